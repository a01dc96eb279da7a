"""Sessions: a server-side record per signed-in session (so sign-out and revocation end it at once), and idle and
absolute timeouts.

The cookie (signed by Flask) carries the session's random id; a request is signed in only while that id's row
exists, for an active user, within the absolute lifetime. Ending a session deletes its row: every later request
is refused. Deleting it also raises the user's poll version (a trigger, same transaction; see panel.derived), so a
widget poll's ETag given before no longer matches and the poll is checked against the database, and refused.
Nothing here depends on Redis.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Flask, current_app, flash, request, session
from flask_login import login_user, logout_user
from sqlalchemy import delete, select

from . import clock
from .extensions import db
from .models import User, UserSession

SID = "_sid"                      # the session id in the cookie
_POLL_ATTR = "_panel_poll"


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
    sid = session.get(SID)
    if isinstance(sid, str):
        db.session.execute(delete(UserSession).where(UserSession.id == sid))
        db.session.commit()
    logout_user()
    session.clear()


def end_all(user_id: int) -> int:
    """End every session of one user (sign out everywhere, password change, deactivation); returns how many."""
    ended = db.session.execute(delete(UserSession).where(UserSession.user_id == user_id)).rowcount
    db.session.commit()
    return ended


def end_everyone() -> int:
    """End every session of every user (operators: ``flask end-sessions --all``); returns how many."""
    ended = db.session.execute(delete(UserSession)).rowcount
    db.session.commit()
    return ended


def active(user_id: int) -> list[UserSession]:
    """The user's live sessions, newest first."""
    return list(db.session.execute(
        select(UserSession).where(UserSession.user_id == user_id,
                                  UserSession.created_at > clock.now() - _lifetime())
        .order_by(UserSession.created_at.desc())
    ).scalars())


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
