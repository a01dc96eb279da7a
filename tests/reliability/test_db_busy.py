"""The database busy or locked: a save waits and retries for the busy window, then answers clearly; nothing is
ever half-saved. The lock is real: another connection holds it (SQLite: BEGIN EXCLUSIVE; PostgreSQL: LOCK TABLE …
IN EXCLUSIVE MODE, which, like SQLite's lock, lets no one else write)."""
from __future__ import annotations

import html
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from support import Session, connect_sage, make_app

from panel import clock
from panel.extensions import db
from panel.localtime import window_start
from panel.models import AuditEvent, Company, SageToken, User

WINDOW = 2  # PANEL_DB_BUSY_SECONDS in these tests: short, so a lock held "too long" costs little time
DAYS = "/settings/sage/reminders/days"
BUSY_SAVE = "The database is busy right now, so nothing was saved. Please try again in a moment."


@pytest.fixture
def app(tmp_path, template_db, redis_server):
    application = make_app(tmp_path, template_db, redis_server, PANEL_DB_BUSY_SECONDS=WINDOW)
    yield application
    clock.freeze(None)


@pytest.fixture
def admin(app):
    return Session(app.test_client(), "admin@example.com")


def is_sqlite(app) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")


@contextmanager
def write_lock(app, seconds: float):
    """Another connection takes the database's write lock now and holds it for ``seconds`` (in a thread), or
    until the ``with`` block ends, whichever comes first."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    taken, release, done, errors = threading.Event(), threading.Event(), threading.Event(), []

    def hold():
        try:
            if uri.startswith("sqlite"):
                conn = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
                conn.execute("BEGIN EXCLUSIVE")
            else:
                import psycopg

                conn = psycopg.connect(uri.replace("postgresql+psycopg://", "postgresql://"))
                conn.execute('LOCK TABLE company, "user", audit_event, sage_token IN EXCLUSIVE MODE')
            taken.set()
            release.wait(seconds)
            conn.rollback()
            conn.close()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            taken.set()
        finally:
            done.set()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10) and not errors, errors
    try:
        yield
    finally:
        release.set()
        done.wait(10)
        assert not errors, errors


def days_and_events(app) -> tuple[int, list[str]]:
    with app.app_context():
        db.session.remove()
        company = Company.query.filter_by(name="Demo Ltd").one()
        return company.reminder_days, [e.detail for e in AuditEvent.query.order_by(AuditEvent.id)]


def user_notified(app, email: str) -> bool:
    with app.app_context():
        db.session.remove()
        return User.query.filter_by(email=email).one().notify_sage_token


def user_id(app, email: str) -> int:
    with app.app_context():
        return User.query.filter_by(email=email).one().id


def timed_post(session, url, **kwargs):
    started = time.monotonic()
    resp = session.post(url, **kwargs)
    return resp, time.monotonic() - started


def timed_get(session, url, **kwargs):
    started = time.monotonic()
    resp = session.get(url, **kwargs)
    return resp, time.monotonic() - started


# --- a real lock held by another connection -----------------------------------------------------------------------

def test_save_waits_for_a_short_lock_then_succeeds(app, admin):
    with write_lock(app, 0.8):
        resp, took = timed_post(admin, DAYS, data={"reminder_days": "14"})
    assert resp.status_code == 200 and ">Saved<" in resp.text
    assert took >= 0.5  # it did wait for the lock
    assert days_and_events(app) == (14, ["Reminder days: 28 → 14"])


def test_save_under_a_long_lock_says_busy_and_saves_nothing(app, admin):
    with write_lock(app, WINDOW + 2):
        resp, took = timed_post(admin, DAYS, data={"reminder_days": "14"})
        assert resp.status_code == 503, resp.text
        assert BUSY_SAVE in html.unescape(resp.text)
        assert 'class="error-message"' in resp.text  # panel.js shows it (htmx does not swap a 503)
        assert took < WINDOW + 1.5  # gave up after the busy window, not when the lock went away
    assert days_and_events(app) == (28, [])
    # Once the lock is gone the same save works.
    assert ">Saved<" in admin.post(DAYS, data={"reminder_days": "14"}).text
    assert days_and_events(app) == (14, ["Reminder days: 28 → 14"])


def test_plain_form_save_under_a_long_lock_gets_the_page_with_the_message(app, admin):
    with write_lock(app, WINDOW + 2):
        resp = admin.post(DAYS, htmx=False, data={"reminder_days": "14", "csrf_token": admin.csrf})
        assert resp.status_code == 503 and BUSY_SAVE in html.unescape(resp.text)
        assert "<html" in resp.text.lower()
    assert days_and_events(app) == (28, [])


def test_recipient_switch_short_lock_then_long_lock(app, admin):
    ben = user_id(app, "ben@example.com")
    with write_lock(app, 0.8):
        resp = admin.post(f"/settings/notifications/{ben}", data={"on": "1", "fragment": "row"})
    assert resp.status_code == 200 and user_notified(app, "ben@example.com") is True
    with write_lock(app, WINDOW + 2):
        resp = admin.post(f"/settings/notifications/{ben}", data={"on": "0", "fragment": "row"})
        assert resp.status_code == 503 and BUSY_SAVE in html.unescape(resp.text)
    with app.app_context():
        assert db.session.get(User, ben).notify_sage_token is True  # the switch-off was not saved
        assert [e.detail for e in AuditEvent.query.all()] == ["Ben Hughes: off → on"]


def test_a_read_blocked_past_the_window_answers_busy_not_500(app, admin):
    if not is_sqlite(app):
        pytest.skip("PostgreSQL never blocks readers behind a writer")
    with write_lock(app, 2 * WINDOW + 2):  # SQLite's EXCLUSIVE lock keeps readers out too
        for htmx in (True, False):  # the polled widget (it then shows its stale state), and a whole page
            resp, took = timed_get(admin, "/settings/sage/widget" if htmx else "/settings/sage", htmx=htmx)
            assert resp.status_code == 503
            assert "The database is busy right now. Please try again in a moment." in html.unescape(resp.text)
            assert took < WINDOW + 1.5  # one busy window, not one more for rendering the answer
    assert admin.get("/settings/sage/widget", htmx=True).status_code == 200


# --- fast failures (deadlock, serialization failure, SQLite's immediate SQLITE_BUSY) are retried ----------------

def _busy_error(app, statement):
    if is_sqlite(app):
        orig = sqlite3.OperationalError("database is locked")
    else:
        import psycopg.errors

        orig = psycopg.errors.DeadlockDetected("deadlock detected")
    return OperationalError(statement, {}, orig)


@contextmanager
def failing(app, prefix: str, times: int):
    """The next ``times`` statements starting with ``prefix`` fail as if the database were busy."""
    left = {"n": times}

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(prefix.upper()) and left["n"] > 0:
            left["n"] -= 1
            raise _busy_error(app, statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield left
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_a_fast_busy_failure_is_retried(app, admin):
    with failing(app, "UPDATE company", times=2) as left:
        resp = admin.post(DAYS, data={"reminder_days": "14"})
    assert left["n"] == 0 and resp.status_code == 200 and ">Saved<" in resp.text
    assert days_and_events(app) == (14, ["Reminder days: 28 → 14"])  # audited once, not three times


def connect(app) -> datetime:
    with app.app_context():
        at = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
        clock.freeze(at)
        return connect_sage(at=at).expires_at


def remind_from(app):
    with app.app_context():
        db.session.remove()
        return SageToken.query.one().remind_from


def test_reminder_days_and_the_reminder_window_are_saved_together(app, admin):
    """Changing reminder days also moves the token's reminder window (the sweep reads it): both or neither."""
    expires = connect(app)
    assert remind_from(app) == window_start(expires, 28, "Europe/London")
    # The window update keeps failing: the new days must not be saved without it.
    with failing(app, "UPDATE sage_token", times=10**6):
        resp = admin.post(DAYS, data={"reminder_days": "14"})
    assert resp.status_code == 503 and BUSY_SAVE in html.unescape(resp.text)
    days, events = days_and_events(app)
    assert (days, [e for e in events if e.startswith("Reminder days")]) == (28, [])
    assert remind_from(app) == window_start(expires, 28, "Europe/London")
    # It fails once: retried as a whole, both saved, audited once.
    with failing(app, "UPDATE sage_token", times=1):
        resp = admin.post(DAYS, data={"reminder_days": "14"})
    assert ">Saved<" in resp.text
    days, events = days_and_events(app)
    assert (days, [e for e in events if e.startswith("Reminder days")]) == (14, ["Reminder days: 28 → 14"])
    assert remind_from(app) == window_start(expires, 14, "Europe/London") != window_start(expires, 28, "Europe/London")
    assert expires - remind_from(app) < timedelta(days=15)


@pytest.mark.parametrize("uri, expected", [
    ("sqlite:////srv/panel.sqlite3", {"timeout": 5}),
    ("postgresql+psycopg://panel@db/panel", {"options": "-c lock_timeout=5000"}),
    ("postgresql+psycopg://panel@db/panel?options=-c%20statement_timeout%3D9000",
     {"options": "-c statement_timeout=9000 -c lock_timeout=5000"}),
])
def test_every_lock_wait_is_bounded(uri, expected):
    from panel.busy import configure_engine

    config = {"PANEL_DB_BUSY_SECONDS": 5, "SQLALCHEMY_DATABASE_URI": uri,
              "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True}}
    configure_engine(config)
    assert config["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": True, "connect_args": expected}
