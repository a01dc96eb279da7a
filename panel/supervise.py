"""``python -m panel.supervise``: the ``make run`` tree's supervisor — the embedded Redis, an RQ worker with its
scheduler, RQ cron and gunicorn, owned by one Supervisor (``panel/supervisor.py``): restarted with backoff when one
dies, all stopped on exit, none left behind when the supervisor is killed, and one running instance per instance
folder.

``flask serve`` (panel/serve.py) reads the app's configuration and replaces itself with this process (same PID), so
the supervisor, which lives as long as ``make run``, holds no copy of the app: it imports no Flask, SQLAlchemy or app
code (tests/test_lean_processes.py; bench/RESULTS.md, benchmark 5)."""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import psutil

from .redis_server import answers, damaged_file, server_argv, server_pid, shutdown_server
from .supervisor import Fatal, Program, Supervisor

BIN = Path(sys.executable).parent
CRON_CONFIG = "panel.reminders.crontab"
PATIENT = ["--connection-class", "panel.rqredis.PatientRedis"]  # wait a Redis outage out instead of exiting
GREETING = "PANEL_SERVE_GREETING"  # extra lines for the start banner (the demo sign-in), from `flask serve`


class Refused(RuntimeError):
    """This serve cannot start (another one runs, the port is taken): the message says why and what to do."""


def _say(text: str) -> None:
    print(f"serve: {text}", file=sys.stderr, flush=True)


def _lock(instance: Path):
    """Hold ``serve.lock`` for our lifetime; refuse clearly when another serve holds it."""
    handle = open(instance / "serve.lock", "a+")  # noqa: SIM115 - held open (and locked) until we exit
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = _read_pidfile(instance)
        raise Refused(
            f"Another `flask serve` is already running for this instance folder (PID {other.get('pid', '?')}, "
            f"port {other.get('port', '?')}: http://127.0.0.1:{other.get('port', '?')}/). Stop it first "
            f"(Ctrl-C in its terminal, or kill {other.get('pid', '<pid>')}).") from None
    return handle


def _read_pidfile(instance: Path) -> dict:
    try:
        return json.loads((instance / "serve.pid").read_text())
    except (OSError, ValueError):
        return {}


def _write_pidfile(instance: Path, port: int, sup: Supervisor) -> None:
    """Record our PID, port and children (PID + start time, so a reused PID is never mistaken for one of them)."""
    children = {}
    for name, pid in sup.pids().items():
        with contextlib.suppress(psutil.Error):  # it just exited: the next check restarts it and rewrites this file
            children[name] = [pid, psutil.Process(pid).create_time()]
    tmp = instance / "serve.pid.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": port, "children": children}))
    os.replace(tmp, instance / "serve.pid")


def _stop_leftovers(instance: Path, redis_url: str | None) -> None:
    """A previous serve that was killed: stop any child of it still running, and an embedded Redis still up."""
    for name, (pid, created) in _read_pidfile(instance).get("children", {}).items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.01:
                os.killpg(pid, signal.SIGKILL)
                _say(f"stopped {name} (pid {pid}), left running by a previous serve")
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass
    pid = server_pid(redis_url) if redis_url else None
    if pid is not None:
        shutdown_server(redis_url, pid, save=True)
        _say(f"stopped the embedded Redis (pid {pid}) left running at {redis_url}")


def _port_free(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return
        except OSError:
            pass
    pid = next((c.pid for c in psutil.net_connections("tcp")
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid), None)
    holder = "another program"
    if pid is not None:
        proc = psutil.Process(pid)
        # A pre-forking server's workers share the socket: name the master (the same command, one level up).
        while (parent := proc.parent()) is not None and parent.cmdline() == proc.cmdline():
            proc = parent
        holder = f"PID {proc.pid}: {' '.join(proc.cmdline())[:80]}"
    raise Refused(f"Port {port} is already in use (by {holder}). Stop it, or choose another port: "
                  f"flask serve --port {port + 1} (make run: PORT={port + 1} make run).")


def _wait_for_redis(url: str, program: Program, log: Path, timeout: float = 60.0) -> None:
    """Until the embedded Redis answers; Fatal (one line: the cause, the fix) when it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(url):  # not yet while it is not listening or still loading its data files
            return
        if program.proc.poll() is not None:
            raise Fatal(program.diagnose() or f"Redis exited as it started ({program.proc.returncode}): "
                                              f"{_last_line(log)} (full log: {log})")
        time.sleep(0.05)
    raise Fatal(f"Redis did not answer within {timeout:.0f} s of starting (log: {log})")


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


def _programs(url: str, port: int, workers: int) -> list[Program]:
    return [
        # SIGKILL if we die: a warm shutdown would let the job in hand (and its work horse) run on unsupervised.
        Program("worker", [str(BIN / "rq"), "worker", "-c", "panel.rqconfig", *PATIENT, "--with-scheduler",
                           "-w", "panel.jobs.PanelWorker", "--url", url, "panel"], death_signal=signal.SIGKILL),
        # SIGKILL if we die: it holds no work, and a SIGTERM would have it wait for Redis, which dies with us.
        Program("cron", [str(BIN / "rq"), "cron", "-c", "panel.rqconfig", *PATIENT, CRON_CONFIG, "--url", url],
                death_signal=signal.SIGKILL),
        # The panel's gunicorn settings: one log format, a quiet access log, secrets redacted (panel/weblog.py).
        Program("web", [str(BIN / "gunicorn"), "-c", "python:panel.weblog", "--bind", f"127.0.0.1:{port}",
                        "--workers", str(workers), "--threads", "4", "--graceful-timeout", "10",
                        "--no-control-socket", "wsgi:app"]),
    ]


def run(instance: Path, port: int, workers: int, redis_url: str, greeting: str = "") -> int:
    """Start everything for ``instance`` and supervise it until SIGINT/SIGTERM; the exit status."""
    os.umask(0o077)  # every file we and our children create (Redis' AOF and RDB, logs) is private
    lock = _lock(instance)
    embedded = not redis_url
    redis_program, log, url = None, None, redis_url
    if embedded:
        argv, url, log = server_argv(str(instance))
        _stop_leftovers(instance, (instance / "redis.url").read_text().strip()
                        if (instance / "redis.url").exists() else None)
        redis_program = Program("redis", argv, stop_last=True, diagnose=lambda: damaged_file(str(instance), log))
    else:
        _stop_leftovers(instance, None)
    _port_free(port)
    env = dict(os.environ, REDIS_URL=url, PANEL_INSTANCE_PATH=str(instance), PORT=str(port))
    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    sup = Supervisor(env, _say)
    status = 0
    try:
        if redis_program:
            sup.start(redis_program)
            _wait_for_redis(url, redis_program, log)
            (instance / "redis.url").write_text(url + "\n")  # other flask commands reattach to it
        for program in _programs(url, port, workers):
            sup.start(program)
        _write_pidfile(instance, port, sup)
        print(f"Redis: {url}{' (embedded; log: ' + str(log) + ')' if embedded else ''}")
        print(f"Processes: {', '.join(f'{n} (pid {p})' for n, p in sup.pids().items())}")
        print(f"\n  Sage panel: http://127.0.0.1:{port}/")
        if greeting:
            print(f"  {greeting}")
        print("  Press Ctrl-C to stop.\n", flush=True)
        known = sup.pids()
        while not stopping:
            sup.check()
            if sup.pids() != known:  # a restart: keep serve.pid true for the next start's leftover check
                known = sup.pids()
                _write_pidfile(instance, port, sup)
            time.sleep(0.2)
    except Fatal as exc:
        print(f"Error: {exc}", file=sys.stderr)
        status = 1
    finally:
        print("Stopping…", file=sys.stderr, flush=True)
        sup.stop()
        for name in ("serve.pid", "redis.url") if embedded else ("serve.pid",):
            (instance / name).unlink(missing_ok=True)
        if embedded and Path(url.removeprefix("unix://")).parent != instance:
            shutil.rmtree(Path(url.removeprefix("unix://")).parent, ignore_errors=True)  # a short socket path
        lock.close()
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point: the instance folder, port and gunicorn workers from the command line; REDIS_URL (empty: the
    embedded Redis) from the environment, as ``flask serve`` resolved it."""
    parser = argparse.ArgumentParser(prog="python -m panel.supervise", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instance", required=True, type=Path, help="the instance folder")
    parser.add_argument("--port", required=True, type=int, help="gunicorn's port")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args(argv)
    greeting = os.environ.pop(GREETING, "")  # said once, and not handed down to the children
    try:
        return run(args.instance, args.port, args.workers, os.environ.get("REDIS_URL", "").strip(), greeting)
    except Refused as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
