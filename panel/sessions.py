"""Sessions: a server-side record per signed-in session (so sign-out and revocation end it at once), idle and
absolute timeouts, and the revocation signal that cached widget polls check instead of the database.

The cookie (signed by Flask) carries the session's random id; a request is signed in only while that id's row
exists, for an active user, within the absolute lifetime. Ending a session deletes its row (one query answers
every later request), then replaces the user's revocation marker in Redis, which the widget's per-process poll
cache compares on every timed poll. With Redis down the marker cannot be read, so polls skip the cache and take
the database path: revocation never depends on Redis.
"""
from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta

import redis
from flask import Flask, current_app, flash, request, session
from flask_login import login_user, logout_user
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import delete, select

from . import clock
from .extensions import db
from .models import User, UserSession
from .redis_conn import redis_url

log = logging.getLogger(__name__)

SID = "_sid"                      # the session id in the cookie
_POLL_ATTR = "_panel_poll"
SIGNAL_PREFIX = "panel:session-signal:"
REDIS_BACKOFF = 5.0               # seconds a process skips Redis after it failed (polls then read the database)
SIGNAL_TIMEOUT = 0.25             # seconds for one marker read or write: a hung Redis must not hold up a poll


def poll_endpoint(view):
    """Mark a view as polled: requesting it does not count as activity for the idle timeout."""
    setattr(view, _POLL_ATTR, True)
    return view


def _is_poll() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, _POLL_ATTR, False))


def _lifetime() -> timedelta:
    return timedelta(hours=current_app.config["PANEL_ABSOLUTE_TIMEOUT_HOURS"])


def start(user: User) -> None:
    """Sign ``user`` in with a fresh session: a new record, and a cleared cookie holding only its id."""
    now = clock.now()
    # Housekeeping on the way (indexed): records past the absolute lifetime can never be used again.
    db.session.execute(delete(UserSession).where(UserSession.created_at <= now - _lifetime()))
    sid = secrets.token_urlsafe(32)  # 256 bits from the OS CSPRNG
    db.session.add(UserSession(id=sid, user_id=user.id, created_at=now, address=(request.remote_addr or "")[:64],
                               user_agent=request.headers.get("User-Agent", "")[:200] or None))
    db.session.commit()
    session.clear()  # a fresh session (and CSRF token) on every sign-in
    login_user(user)
    session.permanent = True
    session[SID] = sid
    session["_started"] = session["_last_seen"] = now.timestamp()


def load(user_id: str) -> User | None:
    """The active user whose live session this request carries, or None (one query; flask-login's user loader)."""
    sid = session.get(SID)
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        return None
    if not isinstance(sid, str):
        return None
    return db.session.execute(
        select(User).join(UserSession, UserSession.user_id == User.id)
        .where(User.id == uid, UserSession.id == sid, User.active.is_(True),
               UserSession.created_at > clock.now() - _lifetime())
    ).scalar_one_or_none()


def end_current() -> None:
    """Sign this request's session out: delete its record, then clear the cookie."""
    sid, uid = session.get(SID), session.get("_user_id")
    if isinstance(sid, str):
        db.session.execute(delete(UserSession).where(UserSession.id == sid))
        db.session.commit()
    if uid is not None:
        bump_signal(uid)
    logout_user()
    session.clear()


def end_all(user_id: int) -> int:
    """End every session of one user (sign out everywhere, password change, deactivation); returns how many."""
    ended = db.session.execute(delete(UserSession).where(UserSession.user_id == user_id)).rowcount
    db.session.commit()
    bump_signal(user_id)
    return ended


def end_everyone() -> int:
    """End every session of every user (operators: ``flask end-sessions --all``); returns how many."""
    users = db.session.execute(select(UserSession.user_id).distinct()).scalars().all()
    ended = db.session.execute(delete(UserSession)).rowcount
    db.session.commit()
    for uid in users:
        bump_signal(uid)
    return ended


def active(user_id: int) -> list[UserSession]:
    """The user's live sessions, newest first."""
    return list(db.session.execute(
        select(UserSession).where(UserSession.user_id == user_id,
                                  UserSession.created_at > clock.now() - _lifetime())
        .order_by(UserSession.created_at.desc())
    ).scalars())


# --- The revocation signal: one small Redis value per user, replaced whenever any of their sessions ends. ---

def _signal_redis(app: Flask) -> redis.Redis:
    """The marker's own client: short timeouts and no retries (the database is the fallback, not patience)."""
    client = app.extensions.get("panel_signal_redis")
    if client is None:
        client = redis.Redis.from_url(redis_url(app), socket_connect_timeout=SIGNAL_TIMEOUT,
                                      socket_timeout=SIGNAL_TIMEOUT, retry=Retry(NoBackoff(), 0))
        app.extensions["panel_signal_redis"] = client
    return client


def _redis_usable(app: Flask) -> bool:
    return app.extensions.get("panel_redis_down_until", 0.0) <= time.monotonic()


def _redis_failed(app: Flask, exc: Exception) -> None:
    app.extensions["panel_redis_down_until"] = time.monotonic() + REDIS_BACKOFF
    log.warning("session signal: Redis unavailable (%s); polls read the database for %.0f s", exc, REDIS_BACKOFF)


def read_signal(app: Flask, user_id) -> bytes | None:
    """The user's current revocation marker (created when missing); None when Redis cannot be asked."""
    if user_id is None or not _redis_usable(app):
        return None
    key = f"{SIGNAL_PREFIX}{user_id}"
    try:
        r = _signal_redis(app)
        value = r.get(key)
        if value is None:
            # A fresh random marker: after a Redis flush or expiry no old cache entry can match it again.
            r.set(key, secrets.token_hex(8), nx=True, ex=int(_signal_ttl(app)))
            value = r.get(key)
        return value
    except (redis.RedisError, OSError) as exc:
        _redis_failed(app, exc)
        return None


def bump_signal(user_id) -> None:
    """Replace the user's marker so every process's cached poll answer for them is dropped at once."""
    app = current_app._get_current_object()
    try:
        _signal_redis(app).set(f"{SIGNAL_PREFIX}{user_id}", secrets.token_hex(8), ex=int(_signal_ttl(app)))
    except (redis.RedisError, OSError) as exc:
        # The database record is already gone, so every uncached request is refused; cached polls in other
        # processes last at most the widget's IDENTITY_TTL, and none while they cannot reach Redis either.
        _redis_failed(app, exc)


def _signal_ttl(app: Flask) -> float:
    return app.config["PANEL_ABSOLUTE_TIMEOUT_HOURS"] * 3600 + 3600


def init_app(app: Flask) -> None:
    """Install the timeout check before every request."""
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=app.config["PANEL_ABSOLUTE_TIMEOUT_HOURS"])
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False

    @app.before_request
    def _enforce_timeouts():
        # Read the session, not current_user: loading the user costs a query, and polls must stay cheap.
        if request.endpoint == "static" or session.get("_user_id") is None:
            return None
        now = clock.now().timestamp()
        idle = app.config["PANEL_IDLE_TIMEOUT_MINUTES"] * 60
        absolute = app.config["PANEL_ABSOLUTE_TIMEOUT_HOURS"] * 3600
        last, started = session.get("_last_seen"), session.get("_started")
        if last is None or started is None or now - last > idle or now - started > absolute:
            end_current()
            flash("Your session expired. Please sign in again.", "info")
            return None  # login_required now answers as for any signed-out request
        if not _is_poll():
            session["_last_seen"] = now
        return None
