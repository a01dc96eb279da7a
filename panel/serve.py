"""``flask serve``: embedded Redis, an RQ worker with its scheduler, RQ cron, and gunicorn, in one command."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from .accounts import DEMO_ADMIN, demo_password
from .redis_conn import redis_url, stop_embedded

BIN = Path(sys.executable).parent
CRON_CONFIG = "panel.reminders.schedule"


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _children(url: str, port: int, workers: int) -> list[tuple[str, list[str]]]:
    procs = [("worker", [str(BIN / "rq"), "worker", "--with-scheduler", "-w", "panel.jobs.PanelWorker",
                         "--url", url, "panel"])]
    if _has_module(CRON_CONFIG):
        procs.append(("cron", [str(BIN / "rq"), "cron", CRON_CONFIG, "--url", url]))
    procs.append(("web", [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                          "--threads", "4", "--no-control-socket", "--access-logfile", "-", "wsgi:app"]))
    return procs


def _stop(running: list[tuple[str, subprocess.Popen]]) -> None:
    for _name, proc in running:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for _name, proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@click.command("serve")
@with_appcontext
@click.option("--port", type=int, default=None, help="web port (default: PORT or 5000)")
@click.option("--workers", type=int, default=2, show_default=True, help="gunicorn worker processes")
def serve_command(port: int | None, workers: int) -> None:
    """Run everything for local use; Ctrl-C stops every child cleanly."""
    app = current_app._get_current_object()
    port = port or app.config["PORT"]
    embedded = not app.config.get("REDIS_URL")
    url = redis_url(app)
    env = dict(os.environ, REDIS_URL=url, PANEL_INSTANCE_PATH=app.instance_path, PORT=str(port))
    running: list[tuple[str, subprocess.Popen]] = []
    stopping = False
    crashed = False

    def _on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        for name, argv in _children(url, port, workers):
            # Own process group: Ctrl-C reaches only us, and we stop the children in order.
            running.append((name, subprocess.Popen(argv, env=env, start_new_session=True)))
        click.echo(f"Redis: {url}{' (embedded)' if embedded else ''}")
        click.echo(f"Processes: {', '.join(f'{n} (pid {p.pid})' for n, p in running)}")
        click.echo(f"\n  Sage panel: http://127.0.0.1:{port}/")
        if app.config.get("SAGE_DEMO"):
            click.echo(f"  Demo sign-in: {DEMO_ADMIN} / {demo_password(app)}")
        click.echo("  Press Ctrl-C to stop.\n")
        while not stopping:
            for name, proc in running:
                if proc.poll() is not None:
                    click.echo(f"{name} exited with status {proc.returncode}; stopping everything.", err=True)
                    stopping = crashed = True
                    break
            time.sleep(0.5)
    finally:
        click.echo("Stopping…")
        _stop(running)
        if embedded:
            stop_embedded()
    if crashed:
        sys.exit(1)
