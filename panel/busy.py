"""A busy or locked database: wait a bounded time, retry the whole unit of work, then say so (nothing saved)."""
from __future__ import annotations

import functools
import sqlite3
import time

from flask import current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from .extensions import db

# PostgreSQL: lock_not_available (lock_timeout ran out), deadlock_detected, serialization_failure.
BUSY_SQLSTATES = frozenset({"55P03", "40P01", "40001"})
SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
# The database takes no writes: PostgreSQL read_only_sql_transaction (a read-only replica or
# default_transaction_read_only), class 53 insufficient resources (disk full, out of memory, too many connections).
UNWRITABLE_SQLSTATES = frozenset({"25006", "53000", "53100", "53200", "53300"})
SQLITE_UNWRITABLE = ("attempt to write a readonly database", "database or disk is full")


class DatabaseBusy(RuntimeError):
    """The database stayed busy for the whole busy window; the unit of work was rolled back."""


def is_busy(exc: BaseException) -> bool:
    """True when ``exc`` means another connection holds a lock (SQLite or PostgreSQL), not a real fault."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) in BUSY_SQLSTATES:
        return True
    return isinstance(orig, sqlite3.OperationalError) and str(orig).startswith(SQLITE_BUSY)


def is_unwritable(exc: BaseException) -> bool:
    """True when ``exc`` means the database takes no writes at all now: read-only, or its disk is full."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) in UNWRITABLE_SQLSTATES:
        return True
    return isinstance(orig, sqlite3.OperationalError) and str(orig).startswith(SQLITE_UNWRITABLE)


def configure_engine(config) -> None:
    """Bound every lock wait by PANEL_DB_BUSY_SECONDS: SQLite's busy timeout, PostgreSQL's lock_timeout.

    Without it a PostgreSQL statement waits for a row lock for ever, holding a web worker thread.
    """
    seconds = config["PANEL_DB_BUSY_SECONDS"]
    uri = config["SQLALCHEMY_DATABASE_URI"]
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    if uri.startswith("sqlite"):
        connect_args.setdefault("timeout", seconds)
    elif uri.startswith("postgresql") and "options" not in connect_args:
        given = make_url(uri).query.get("options", "")  # keep options from DATABASE_URL (?options=…)
        connect_args["options"] = f"{given} -c lock_timeout={int(seconds * 1000)}".strip()
    options["connect_args"] = connect_args
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def retrying(func):
    """Run a unit of work that commits at its end; when the database is busy, roll it back and run it again.

    Gives up with DatabaseBusy once PANEL_DB_BUSY_SECONDS have passed. A statement that waits for a lock waits
    up to that long by itself, so the retries matter for fast failures: deadlocks, serialization failures and
    SQLite's immediate SQLITE_BUSY. Every attempt starts from a rollback, so nothing is ever half-saved.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        deadline = time.monotonic() + current_app.config["PANEL_DB_BUSY_SECONDS"]
        pause = 0.05
        while True:
            try:
                return func(*args, **kwargs)
            except DBAPIError as exc:
                if not is_busy(exc):
                    raise
                db.session.rollback()
                if time.monotonic() + pause >= deadline:
                    raise DatabaseBusy(str(exc.orig)) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    return wrapper
