"""Each process's copy of the poll versions (``panel.derived.PollState``), so that a poll which finds nothing changed
is answered without reading the database.

The versions are raised by triggers in the database, in the same transaction as the change, so they are right for
every writer in every process on every host. Each process keeps the ones it has needed in a dict and brings it up to
date with ONE indexed query at most every ``PANEL_POLL_SYNC_SECONDS`` (0.5 s): every row changed since the last sync
(minus a margin, so a transaction that committed late is not missed). A commit in this process marks the copy stale,
so the next poll here syncs first. Hence: in the process where a change was made, the next poll sees it; in any
other process, a poll more than PANEL_POLL_SYNC_SECONDS after the commit sees it. Versions only grow, so merging
keeps the larger one whatever order concurrent reads finish in. Redis plays no part.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from flask import Flask
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .busy import DatabaseBusy, is_busy
from .extensions import db

log = logging.getLogger(__name__)

SYNC_SECONDS = 0.5
MARGIN = 120.0        # seconds: a change whose transaction commits this long after its trigger ran is still synced
MAX_KEYS = 200_000    # bounds memory: the copy is emptied (and refilled as polls need it) past this
BUSY_HOLD = 1.0       # seconds: after a read found the database locked, polls answer "busy" at once this long
_NOW = {"sqlite": "(julianday('now') - 2440587.5) * 86400.0", "postgresql": "extract(epoch FROM now())::float8"}
_NEVER = 1e300

Key = tuple[str, int]


class Book:
    """One process's versions of one app, and when they were last brought up to date."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.versions: dict[Key, int] = {}
        self.synced_at = float("-inf")   # time.monotonic() when the last successful sync started
        self.dirty_at = float("-inf")    # time.monotonic() of the last commit made in this process
        self.since = _NEVER              # database clock: the next sync reads rows changed after this
        self.busy_until = float("-inf")  # time.monotonic(): a read waited out the busy window; don't wait again

    def merge(self, rows) -> None:
        """Keep the larger of the known and the given version of each key."""
        with self.lock:
            if len(self.versions) > MAX_KEYS:
                self.versions.clear()
            for key, version in rows:
                if version > self.versions.get(key, -1):
                    self.versions[key] = version


def book(app: Flask) -> Book:
    """This process's book for ``app`` (a forked worker starts its own)."""
    found = app.extensions.get("panel_versions")
    if found is None or found.pid != os.getpid():
        found = app.extensions["panel_versions"] = Book()
    return found


def _engine(app: Flask) -> Engine:
    return app.extensions["panel_versions_engine"]


def _sync(app: Flask, b: Book) -> bool:
    """Read every version changed since the last sync; False when the database cannot be asked."""
    engine = _engine(app)
    with b.lock:
        started = time.monotonic()
        if started - b.synced_at < app.config["PANEL_POLL_SYNC_SECONDS"] and b.synced_at > b.dirty_at:
            return True  # another thread synced while this one waited
        sql = text(f"SELECT 'n', 0, 0, {_NOW[engine.dialect.name]} UNION ALL "
                   "SELECT kind, ref_id, version, changed_at FROM poll_state WHERE changed_at > :since")
        try:
            with engine.connect() as conn:
                rows = conn.execute(sql, {"since": b.since}).all()
        except SQLAlchemyError as exc:
            return _unavailable(b, exc)
        db_now = next(float(r[3]) for r in rows if r[0] == "n")
    b.merge(((r[0], int(r[1])), int(r[2])) for r in rows if r[0] != "n")
    with b.lock:
        b.since, b.synced_at = db_now - MARGIN, started
    return True


def _unavailable(b: Book, exc: SQLAlchemyError) -> bool:
    """A read failed: when it waited out the busy window, say busy (and say it at once for BUSY_HOLD more seconds,
    so that one poll never waits the window twice); otherwise the poll renders in full."""
    if is_busy(exc):
        b.busy_until = time.monotonic() + BUSY_HOLD
        raise DatabaseBusy("poll versions: the database stayed locked") from exc
    log.warning("poll versions: database unavailable (%s); polls render in full", exc)
    return False


def _fetch(app: Flask, b: Book, keys: list[Key]) -> bool:
    """Read the versions of ``keys`` this process has not needed before (absent rows are version 0)."""
    where = " OR ".join(f"(kind = :k{i} AND ref_id = :r{i})" for i in range(len(keys)))
    params = {f"{p}{i}": v for i, (k, r) in enumerate(keys) for p, v in (("k", k), ("r", r))}
    try:
        with _engine(app).connect() as conn:
            found = {(k, int(r)): int(v) for k, r, v in
                     conn.execute(text(f"SELECT kind, ref_id, version FROM poll_state WHERE {where}"), params)}
    except SQLAlchemyError as exc:
        return _unavailable(b, exc)
    b.merge((key, found.get(key, 0)) for key in keys)
    return True


def current(app: Flask, keys: list[Key]) -> dict[Key, int] | None:
    """The versions of ``keys`` as this process knows them, at most PANEL_POLL_SYNC_SECONDS old; None when the
    database cannot be asked (the caller then renders in full and gives no validator). Raises DatabaseBusy when the
    database stayed locked for the busy window (or did so less than BUSY_HOLD ago). Needs no app context."""
    b = book(app)
    now = time.monotonic()
    if now < b.busy_until:
        raise DatabaseBusy("poll versions: the database was locked a moment ago")
    if (now - b.synced_at >= app.config["PANEL_POLL_SYNC_SECONDS"] or b.synced_at <= b.dirty_at) \
            and not _sync(app, b):
        return None
    versions = b.versions
    missing = [k for k in keys if k not in versions]
    if missing and not _fetch(app, b, missing):
        return None
    try:
        return {k: versions[k] for k in keys}
    except KeyError:  # emptied for size by another thread just now: read them again
        return current(app, keys) if _fetch(app, b, keys) else None


def init_app(app: Flask) -> None:
    """Default the sync interval, and mark this process's copy stale after each of its own commits."""
    app.config.setdefault("PANEL_POLL_SYNC_SECONDS", SYNC_SECONDS)
    with app.app_context():
        engine = app.extensions["panel_versions_engine"] = db.engine

    @event.listens_for(engine, "commit")
    def _committed(_conn) -> None:
        book(app).dirty_at = time.monotonic()
