"""`make run`'s path end to end: migrate, seed, `flask serve` (embedded Redis, worker, cron, gunicorn), Ctrl-C.

Kept lean for `make test`: the two set-up commands run in-process (the same CLI commands); faults on the supervisor
(SIGKILL, restarts, a second instance, a damaged AOF) are in tests/reliability/test_serve_supervisor.py (slow)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests
from support import base_env, free_port

from panel import create_app

ROOT = Path(__file__).resolve().parent.parent
FLASK = [str(Path(sys.executable).parent / "flask"), "--app", "wsgi"]


def test_serve_runs_everything_and_stops_cleanly(tmp_path):
    env = dict(os.environ, **base_env(PANEL_INSTANCE_PATH=str(tmp_path / "inst")))
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    runner = create_app({"INSTANCE_PATH": env["PANEL_INSTANCE_PATH"], "ENV_VARS": env}).test_cli_runner()
    for step in (["db", "upgrade"], ["seed-demo"]):
        done = runner.invoke(args=step)
        assert done.exit_code == 0, done.output
    port = free_port()
    proc = subprocess.Popen(FLASK + ["serve", "--port", str(port), "--workers", "1"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/login", timeout=10).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not come up"
            time.sleep(0.3)
        http = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"', http.get(f"{base}/login").text).group(1)
        resp = http.post(f"{base}/login", data={"email": "admin@example.com", "password": "correct horse battery",
                                                "csrf_token": token})
        assert resp.url == f"{base}/settings/sage" and "Demo Ltd" in resp.text
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "rq worker" in names or "worker --with-scheduler" in names
        assert "gunicorn" in names
        # The reminder sweep's RQ cron process, with the Redis client that waits an outage out (as the worker's).
        assert "cron -c panel.rqconfig --connection-class panel.rqredis.PatientRedis panel.reminders.crontab" in names
        assert "redis-server" in names  # the embedded Redis is a supervised child too …
        assert (tmp_path / "inst" / "redis.sock").exists()  # … on a socket in the instance folder
        # `flask serve` became the supervisor (same PID), and neither it nor rq cron holds the app's image
        # (benchmark 5): SQLAlchemy's and MarkupSafe's (Flask's) compiled modules are not mapped in them.
        assert "-m panel.supervise" in " ".join(psutil.Process(proc.pid).cmdline())
        cron = next(c for c in children if " cron " in " ".join(c.cmdline()))
        for lean in (proc.pid, cron.pid):
            maps = Path(f"/proc/{lean}/maps").read_text()
            assert "/sqlalchemy/" not in maps and "/markupsafe/" not in maps, psutil.Process(lean).cmdline()
        web = next(c for c in children if "gunicorn" in " ".join(c.cmdline()))
        assert "/sqlalchemy/" in Path(f"/proc/{web.pid}/maps").read_text()  # (the check sees an app when there is one)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Demo sign-in: admin@example.com / correct horse battery" in out
    assert f"http://127.0.0.1:{port}/" in out
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"children left running: {alive}"
