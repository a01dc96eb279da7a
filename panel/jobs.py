"""RQ job functions that need the Flask app; each runs inside an app context built once per worker."""
from __future__ import annotations

import functools
import os

from . import clock

_app = None
_app_pid: int | None = None


def app():
    """The worker's Flask app, created once (before fork when the worker preloads it) from the environment."""
    global _app, _app_pid
    if _app is None:
        from . import create_app

        _app, _app_pid = create_app(), os.getpid()
    elif _app_pid != os.getpid():
        # A forked work horse must not share the parent's pooled database connections.
        from .extensions import db

        with _app.app_context():
            db.engine.dispose(close=False)
        _app_pid = os.getpid()
    return _app


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
    from .models import User
    from .extensions import db

    return {
        "token": token,
        "pid": os.getpid(),
        "users": db.session.query(User).count(),
        "at": clock.now().isoformat(),
    }
