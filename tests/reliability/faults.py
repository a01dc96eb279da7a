"""Helpers of the reliability tests: a ledger write lock held by another connection, an SMTP server that takes it
the moment it accepts a message, real RQ worker processes, and the clock zone trick for real-clock tests."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import psutil
from smtp_server import Recorder, SMTPServer
from support import base_env

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent


def midday_zone() -> str:
    """An IANA zone (Etc/GMT±N) where it is about noon now: for tests that run on the real clock."""
    offset = 12 - datetime.now(timezone.utc).hour  # hours east of UTC; Etc/ names invert the sign
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


class LedgerLock:
    """Another connection holding a write lock on the ledger: SQLite ``BEGIN EXCLUSIVE`` (no one else reads or
    writes), PostgreSQL ``LOCK TABLE reminder_delivery IN EXCLUSIVE MODE`` (no one else writes it)."""

    def __init__(self, uri: str):
        self.uri = uri
        self.conn = None
        self.held = threading.Event()

    def take(self) -> None:
        """Take the lock now (waits for current writers to finish)."""
        if self.uri.startswith("sqlite"):
            self.conn = sqlite3.connect(self.uri.removeprefix("sqlite:///"), isolation_level=None, timeout=10,
                                        check_same_thread=False)
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            import psycopg

            self.conn = psycopg.connect(self.uri.replace("postgresql+psycopg://", "postgresql://"))
            self.conn.execute("LOCK TABLE reminder_delivery IN EXCLUSIVE MODE")
        self.held.set()

    def release(self) -> None:
        """Let go (idempotent)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.rollback()
            conn.close()
        self.held.clear()


class LockOnAccept(Recorder):
    """An SMTP server that accepts the first message, then (before its 250 reaches the sender) has another
    connection take the ledger's write lock: the sender's next ledger write finds the database locked.
    ``hold`` seconds later the lock goes again; ``hold=None`` keeps it until the test releases it."""

    def __init__(self, lock: LedgerLock | None, hold: float | None):
        super().__init__()
        self.ledger_lock, self.hold, self.armed = lock, hold, True

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        if self.armed:
            self.armed = False
            self.ledger_lock.take()
            if self.hold is not None:
                threading.Timer(self.hold, self.ledger_lock.release).start()
        return reply


class SMTP(SMTPServer):
    """A started aiosmtpd server on 127.0.0.1 with ``handler`` (use as a context manager); flask-mail's own
    timeout, so a stalled server is waited for as in production."""

    def __init__(self, handler: Recorder):
        super().__init__(handler=handler)

    def config(self) -> dict:
        """App configuration that sends mail here."""
        return {k: v for k, v in super().config().items() if k != "MAIL_TIMEOUT"}

    def env(self) -> dict:
        """The same, as environment variables for another process."""
        return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(self.port), "MAIL_USE_TLS": "0"}


def process_env(app, **extra) -> dict:
    """Environment under which another process sees the same database, Redis and instance folder as ``app``."""
    env = dict(os.environ)
    env.update(base_env())
    env.update(PANEL_INSTANCE_PATH=app.instance_path, REDIS_URL=app.config["REDIS_URL"],
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], PANEL_BASE_URL="https://crm.example.com")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_worker(app, env: dict) -> subprocess.Popen:
    """A real ``rq worker`` process (PanelWorker, forking a work horse per job) on ``app``'s queue."""
    return subprocess.Popen([str(BIN / "rq"), "worker", "-w", "panel.jobs.PanelWorker", "--url",
                             app.config["REDIS_URL"], "panel"], env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sigkill_tree(pid: int) -> list[psutil.Process]:
    """SIGKILL a process and every descendant (the work horse is in a process group of its own); returns them."""
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return []
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    return procs
