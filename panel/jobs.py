"""Background jobs: the RQ queue (enqueue by dotted path), the worker class, and the app context jobs run in.

The web process only enqueues, by dotted path, so it never imports worker code; the worker builds the Flask app
once, before forking, so each job starts fast.
"""
from __future__ import annotations

import contextlib
import functools
import os
import signal

import redis
from rq import Queue, Worker

from . import clock
from .extensions import db
from .models import User
from .redis_conn import get_redis
from .rqredis import OUTAGE
from .supervisor import die_with_parent

DEFAULT_QUEUE = "panel"

_app = None
_app_pid: int | None = None


class QueueUnavailable(RuntimeError):
    """Redis cannot be reached, so background work cannot be queued now."""


def get_queue(name: str = DEFAULT_QUEUE, app=None) -> Queue:
    """The named RQ queue on this app's Redis."""
    return Queue(name, connection=get_redis(app))


def enqueue(func_path: str, *args, app=None, **kwargs):
    """Enqueue ``func_path`` (e.g. ``panel.jobs.ping``); raises QueueUnavailable when Redis is down."""
    try:
        return get_queue(app=app).enqueue(func_path, *args, **kwargs)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise QueueUnavailable(str(exc)) from exc


def app():
    """The worker's Flask app, created once (before fork when the worker preloads it) from the environment."""
    global _app, _app_pid
    if _app is None:
        # Imported here: the factory imports the app's parts, and they import this module (an import circle).
        from .factory import create_app

        _app, _app_pid = create_app(), os.getpid()
    elif _app_pid != os.getpid():
        # A forked work horse must not share the parent's pooled database connections.
        with _app.app_context():
            db.engine.dispose(close=False)
        _app_pid = os.getpid()
    return _app


SCHEDULER_STOP_SECONDS = 3.0  # how long a stopping worker waits for its scheduler process before killing it


class PanelWorker(Worker):
    """``rq worker -w panel.jobs.PanelWorker``: preloads the app in the parent process; its work horse dies with it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._worker_pid = os.getpid()
        app()

    def teardown(self):
        """The worker is leaving (a stop, or an error): its last Redis calls must not wait out an outage."""
        OUTAGE.stopping = True
        super().teardown()

    def stop_scheduler(self):
        """RQ's, bounded: the scheduler process may be waiting out a Redis outage (its SIGTERM handler only sets a
        flag its loop reads between commands), so it gets SCHEDULER_STOP_SECONDS and is then killed. It holds
        nothing that outlives it: its Redis locks expire."""
        process = self.scheduler._process
        if not (process and process.pid):
            return
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGKILL)
            process.join()

    def main_work_horse(self, job, queue):
        """The forked job child: RQ moves it into a process group of its own, so a signal to the worker's group
        never reaches it; the kernel stops it instead the moment the worker dies (no job runs on unsupervised)."""
        die_with_parent(signal.SIGKILL, self._worker_pid)
        return super().main_work_horse(job, queue)


def with_app_context(func):
    """Run a job inside the worker's app context."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with app().app_context():
            return func(*args, **kwargs)

    return wrapper


@with_app_context
def ping(token: str) -> dict:
    """Prove a worker is alive and can reach the database: echo ``token`` with the worker's pid and user count."""
    return {
        "token": token,
        "pid": os.getpid(),
        "users": db.session.execute(db.select(db.func.count(User.id))).scalar_one(),
        "at": clock.now().isoformat(),
    }
