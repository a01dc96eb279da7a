"""The production stack as real processes for the scale-out tests: the Procfile's own commands (web, worker, cron),
run by ``sh`` with the same environment, so the tests exercise exactly the flags production uses; a redis-server
the test stops and starts is in tests/redis_tcp.py."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import requests
from faults import BIN, ROOT
from redis_tcp import RedisServer, wait_until  # noqa: F401 (the tests import both from here)
from support import base_env, free_port

PROCFILE = ROOT / "Procfile"


def procfile(name: str) -> str:
    """The command of one Procfile process (``web``, ``worker``, ``cron``)."""
    for line in PROCFILE.read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


class Proc:
    """One process of the stack, in a session of its own, its output in ``log``."""

    def __init__(self, name: str, command: str, env: dict, log: Path):
        self.name, self.log = name, log
        self.proc = subprocess.Popen(["sh", "-c", f"exec {command}"], env=env, cwd=ROOT, start_new_session=True,
                                     stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        self.pid = self.proc.pid

    def alive(self) -> bool:
        """Still the process that was started (not exited, not a zombie)."""
        return self.proc.poll() is None

    def text(self) -> str:
        """What it has written so far."""
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL it and everything it started (RQ's work horse and scheduler are in groups of their own)."""
        try:
            procs = psutil.Process(self.pid).children(recursive=True) + [psutil.Process(self.pid)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)


class Stack:
    """Web instances, workers and cron started from the Procfile; all stopped at the end (``with``)."""

    def __init__(self, env: dict, folder: Path):
        self.env, self.folder = env, folder
        self.procs: list[Proc] = []

    def start(self, name: str, extra: str = "", **env) -> Proc:
        """Start the Procfile's ``name`` (with ``extra`` arguments and environment); web instances get a port."""
        full = dict(self.env, **{k: str(v) for k, v in env.items()})
        count = sum(p.name.startswith(name) for p in self.procs)
        proc = Proc(f"{name}{count + 1}", f"{procfile(name)} {extra}".strip(), full,
                    self.folder / f"{name}{count + 1}.log")
        proc.port = int(full["PORT"]) if name == "web" else None
        self.procs.append(proc)
        return proc

    def web(self, port: int | None = None, **env) -> Proc:
        """One gunicorn instance (one worker process, the Procfile's 4 threads) on ``port`` (default: a free one),
        once it answers."""
        port = port or free_port()
        proc = self.start("web", "--no-control-socket", PORT=port, WEB_CONCURRENCY=1, **env)
        proc.url = f"http://127.0.0.1:{port}"

        def up():
            assert proc.alive(), proc.text()
            try:
                return requests.get(f"{proc.url}/login", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 90, f"{proc.name} to answer")
        return proc

    def text(self) -> str:
        """Every process's output, for a failing assertion's message."""
        return "\n".join(f"--- {p.name} (pid {p.pid}, {'alive' if p.alive() else 'exited'})\n{p.text()[-6000:]}"
                         for p in self.procs)

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.kill()


def stack_env(app, redis_url: str, **extra) -> dict:
    """The environment the stack's processes share: ``app``'s database and instance folder, ``redis_url``."""
    env = dict(os.environ)
    for name in ("RQ_CONNECTION_CLASS", "RQ_REDIS_URL", "RQ_CONFIG"):
        env.pop(name, None)
    env.update(base_env(), PANEL_INSTANCE_PATH=app.instance_path, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=redis_url, PANEL_BASE_URL="https://crm.example.com")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the Procfile names gunicorn, rq: this venv's
    env.update({k: str(v) for k, v in extra.items()})
    return env
