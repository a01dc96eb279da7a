"""Issue 10 items 4 and 5: ``flask serve`` (make run) as a real supervisor, tried with SIGKILL on real processes.

- SIGKILLed itself while a send job is in flight: nothing it started keeps running (the work horse included, which
  RQ moves into its own process group), no mail goes out afterwards, and the next start works (no "Connection in
  use") and re-sends the reminder that never reached DATA — once.
- A child that dies (gunicorn, the worker, Redis) is restarted with backoff and logged while the others keep
  serving; a second serve for the same instance is refused with the PID and port.
- A damaged Redis append-only file stops it with the cause and the fix in one line; starts leave no temporary
  folders behind; instance files are created 0600.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
import redis
import requests
from faults import BIN, ROOT, SMTP, midday_zone
from smtp_server import Recorder
from support import base_env, connect_sage, free_port, make_app, postgres_url

from panel import clock
from panel.extensions import db
from panel.models import Company, ReminderDelivery

pytestmark = pytest.mark.slow
# Restarts and Redis's own files do not depend on the database: the SQLite run (make run's database) covers them.
# The SIGKILL test, which asserts on the ledger, runs on both.
SQLITE_ONLY = pytest.mark.skipif(bool(postgres_url()), reason="process and Redis behaviour: the SQLite run covers it")
FLASK = [str(BIN / "flask"), "--app", "wsgi"]


class Serve:
    """One ``flask serve`` process in a session of its own, its output in a file."""

    def __init__(self, env: dict, port: int, out: Path):
        self.env, self.port, self.out = env, port, out
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Serve":
        self.proc = subprocess.Popen(FLASK + ["serve", "--port", str(self.port), "--workers", "1"], env=self.env,
                                     cwd=ROOT, start_new_session=True, stdout=open(self.out, "a"),
                                     stderr=subprocess.STDOUT)
        return self

    def up(self, timeout: float = 90) -> None:
        """Until the web answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.text()
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/login", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("serve did not come up:\n" + self.text())

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def tree(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def children(self, instance: Path) -> dict[str, int]:
        return {name: pid for name, (pid, _created) in
                json.loads((instance / "serve.pid").read_text())["children"].items()}

    def interrupt(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes of ``procs`` still running after ``timeout`` seconds."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(autouse=True)
def reaper(tmp_path):
    """Whatever a failing test left running (its processes name its tmp_path or its port): SIGKILLed."""
    ports: list[int] = []
    yield ports
    marks = [str(tmp_path)] + [f"127.0.0.1:{p}" for p in ports] + [f"--port {p}" for p in ports]
    for proc in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if proc.pid != os.getpid() and any(m in line for m in marks):
            try:
                proc.kill()
            except psutil.Error:
                pass


@pytest.fixture
def site(tmp_path, template_db, redis_server):
    """An instance folder with the seeded database (SQLite copy or PostgreSQL clone) and a private TMPDIR."""
    app = make_app(tmp_path, template_db, redis_server)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, **base_env(PANEL_INSTANCE_PATH=app.instance_path, TMPDIR=str(tmpdir),
                                      DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"]))
    env.pop("REDIS_URL", None)  # the embedded Redis, as make run does
    return app, env, Path(app.instance_path), tmpdir


def test_serve_sigkilled_mid_send_leaves_nothing_running_and_nothing_sent(site, tmp_path, reaper):
    app, env, instance, _ = site
    handler = Recorder()
    with SMTP(handler) as smtp:
        with app.app_context():
            company = Company.query.filter_by(name="Demo Ltd").one()
            company.reminder_hour, company.timezone = 0, midday_zone()  # due now, whatever the real clock says
            db.session.commit()
            connect_sage(at=clock.now() - timedelta(days=85))
            db.session.remove()
        handler.stall_rcpt["chloe@example.com"] = 15  # the second reminder hangs at RCPT: a job is in flight
        env.update(smtp.env(), PANEL_BASE_URL="https://crm.example.com", PANEL_REMINDER_LEASE_SECONDS="2")
        port = free_port()
        reaper.append(port)
        serve = Serve(env, port, tmp_path / "serve.log").start()
        assert handler.stalled.wait(120), serve.text()  # the cron's first sweep ran and the batch is sending
        stalled_at = time.monotonic()
        tree = serve.tree()
        worker = next(p for p in psutil.Process(serve.proc.pid).children() if "worker" in " ".join(p.cmdline()))
        horses = [p for p in worker.children() if os.getpgid(p.pid) == p.pid]  # RQ's work horse: its own group
        assert horses, "no job in flight"
        os.kill(serve.proc.pid, signal.SIGKILL)  # as `kill -9` of make's process group would
        serve.proc.wait(10)
        assert gone(tree, 15) == [], "left running after serve was killed"
        with pytest.raises((redis.RedisError, OSError)):
            redis.Redis.from_url(f"unix://{instance / 'redis.sock'}", socket_connect_timeout=1).ping()
        time.sleep(max(0.0, stalled_at + 17 - time.monotonic()))  # past the end of the stall
        assert handler.to() == ["admin@example.com"], "mail went out after serve was killed"

        again = Serve(env, port, tmp_path / "serve2.log").start()  # same port: nothing holds it
        try:
            again.up()
            wait_until(lambda: len(handler.messages) >= 2, 90, "the interrupted reminder to be re-sent")
            time.sleep(2)
            assert Counter(handler.to()) == {"admin@example.com": 1, "chloe@example.com": 1}
            with app.app_context():
                db.session.remove()
                assert {r.status for r in ReminderDelivery.query.all()} == {"sent"}
            tree = again.tree()
        finally:
            assert again.interrupt() == 0, again.text()
        assert gone(tree, 10) == []


@SQLITE_ONLY
def test_children_restart_with_backoff_and_a_second_serve_is_refused(site, tmp_path, reaper):
    app, env, instance, _ = site
    port = free_port()
    reaper.append(port)
    serve = Serve(env, port, tmp_path / "serve.log").start()
    try:
        serve.up()
        second = subprocess.run(FLASK + ["serve", "--port", str(free_port())], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert (f"already running for this instance folder (PID {serve.proc.pid}, port {port}"
                in second.stdout + second.stderr)
        other = dict(env, PANEL_INSTANCE_PATH=str(tmp_path / "other"))  # another instance, the same port
        busy = subprocess.run(FLASK + ["serve", "--port", str(port)], env=other, cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert busy.returncode == 1 and f"Port {port} is already in use (by PID {first_web(serve)}" in busy.stderr
        first = serve.children(instance)
        assert set(first) == {"redis", "worker", "cron", "web"}

        # gunicorn dies (its whole process group): restarted after 1 s, the worker untouched.
        os.killpg(first["web"], signal.SIGKILL)
        wait_until(lambda: f"web (pid {first['web']}) exited with killed by SIGKILL; restarting in 1 s"
                   in serve.text(), 10, "the web restart to be logged")
        serve.up(30)
        web2 = wait_until(lambda: serve.children(instance).get("web", first["web"]) != first["web"]
                          and serve.children(instance)["web"], 10, "a new web pid")
        assert serve.children(instance)["worker"] == first["worker"]
        # Dies again at once: the next wait is longer (backoff).
        os.killpg(web2, signal.SIGKILL)
        wait_until(lambda: "restarting in 2 s (restart 2)" in serve.text(), 10, "a longer backoff")
        serve.up(30)

        # Redis dies: restarted on the same socket; the web keeps answering meanwhile; jobs run again after.
        os.kill(first["redis"], signal.SIGKILL)
        assert requests.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code == 200
        wait_until(lambda: f"redis (pid {first['redis']}) exited with killed by SIGKILL" in serve.text(), 10,
                   "the Redis restart to be logged")
        url = f"unix://{instance / 'redis.sock'}"
        wait_until(lambda: _pings(url), 30, "Redis to answer again")
        from rq import Queue

        job = Queue("panel", connection=redis.Redis.from_url(url)).enqueue("panel.jobs.ping", "after")
        wait_until(lambda: job.get_status(refresh=True) == "finished", 90, "a worker to run a job after the restart")
        # The worker and the cron waited Redis out (issue 16): the same processes, not restarts.
        assert {k: serve.children(instance)[k] for k in ("worker", "cron")} == \
            {k: first[k] for k in ("worker", "cron")}, serve.text()
        assert "serve: worker (pid" not in serve.text() and "serve: cron (pid" not in serve.text()  # no exit
        assert "Redis answers again" in serve.text()  # the worker's reconnection, logged

        # The worker is killed: restarted too.
        worker = serve.children(instance)["worker"]
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: serve.children(instance).get("worker", worker) != worker, 30, "a new worker")
        tree = serve.tree()
    finally:
        code = serve.interrupt()
    assert code == 0, serve.text()
    assert gone(tree, 10) == []
    assert not (instance / "serve.pid").exists()


def first_web(serve: Serve) -> int:
    """The gunicorn master (which listens on the port)."""
    return next(p.pid for p in psutil.Process(serve.proc.pid).children() if "gunicorn" in " ".join(p.cmdline()))


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


@SQLITE_ONLY
def test_damaged_aof_is_one_line_files_are_private_and_no_temp_folders(tmp_path, reaper):
    instance, tmpdir = tmp_path / "inst", tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, **base_env(PANEL_INSTANCE_PATH=str(instance), TMPDIR=str(tmpdir)))
    for name in ("REDIS_URL", "DATABASE_URL"):
        env.pop(name, None)
    env.pop("SECRET_KEY")
    env.pop("PANEL_ENCRYPTION_KEYS")  # generated in the instance folder, as on a laptop
    done = subprocess.run(FLASK + ["db", "upgrade"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # A child of an earlier serve that was killed and somehow survived it: the next start stops it.
    survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    (instance / "serve.pid").write_text(json.dumps({"pid": 1, "port": 1, "children": {
        "worker": [survivor.pid, psutil.Process(survivor.pid).create_time()]}}))
    port = free_port()
    reaper.append(port)
    serve = Serve(env, port, tmp_path / "serve.log").start()
    serve.up()
    redis.Redis.from_url(f"unix://{instance / 'redis.sock'}").set("queued-work", "x")
    assert survivor.wait(10) == -signal.SIGKILL
    assert f"stopped worker (pid {survivor.pid}), left running by a previous serve" in serve.text()
    assert serve.interrupt() == 0, serve.text()
    assert list(tmpdir.iterdir()) == [], "a start left temporary files or folders behind"
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    for name in ("panel.sqlite3", "secret_key", "encryption_keys", "appendonly.aof", "redis.db", "redis.log"):
        mode = stat.S_IMODE((instance / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"

    aof = instance / "appendonly.aof"
    aof.write_bytes(aof.read_bytes() + b"*3\r\n$3\r\nSET\r\n$1\r\na\r\nGARBAGE\r\n*1\r\n$4\r\nPING\r\n")
    started = time.monotonic()
    failed = subprocess.run(FLASK + ["serve", "--port", str(port)], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stdout + failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, failed.stderr
    assert f"its data file {aof} is damaged" in errors[0] and f"mv {aof} {aof}.damaged" in errors[0]
    assert time.monotonic() - started < 60
    assert list(tmpdir.iterdir()) == []
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
