"""``flask serve`` (``make run``): read the app's configuration, then become the supervisor of the whole tree.

The command replaces itself (``os.execve``, same PID) with ``python -m panel.supervise`` (panel/supervise.py), which
starts and owns the embedded Redis, the RQ worker, RQ cron and gunicorn. The supervisor lives as long as ``make
run`` and needs nothing of the app, so it does not keep the 90 MiB the app's image takes in this process (bench/
RESULTS.md, benchmark 5); it keeps this process's PID, so Ctrl-C, ``kill`` and make's process group reach it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from .accounts import DEMO_ADMIN, demo_password
from .supervise import GREETING


def supervisor_argv(instance: str, port: int, workers: int) -> list[str]:
    """The supervisor's command line (this interpreter, so the same virtualenv)."""
    return [sys.executable, "-m", "panel.supervise", "--instance", instance, "--port", str(port),
            "--workers", str(workers)]


@click.command("serve")
@with_appcontext
@click.option("--port", type=int, default=None, help="web port (default: PORT or 5000)")
@click.option("--workers", type=int, default=2, show_default=True, help="gunicorn worker processes")
def serve_command(port: int | None, workers: int) -> None:
    """Run everything for local use; Ctrl-C stops every child cleanly, and a child that dies is restarted."""
    app = current_app._get_current_object()
    env = dict(os.environ, REDIS_URL=app.config.get("REDIS_URL") or "", PANEL_INSTANCE_PATH=app.instance_path)
    if app.config.get("SAGE_DEMO"):
        env[GREETING] = f"Demo sign-in: {DEMO_ADMIN} / {demo_password(app)} (every demo person has this password)"
    argv = supervisor_argv(str(Path(app.instance_path)), port or app.config["PORT"], workers)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
