"""Session hardening: idle and absolute timeouts; polling requests do not keep a session alive."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app, flash, request, session
from flask_login import logout_user

from . import clock

_POLL_ATTR = "_panel_poll"


def poll_endpoint(view):
    """Mark a view as polled: requesting it does not count as activity for the idle timeout."""
    setattr(view, _POLL_ATTR, True)
    return view


def _is_poll() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, _POLL_ATTR, False))


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
            logout_user()
            session.clear()
            flash("Your session expired. Please sign in again.", "info")
            return None  # login_required now answers as for any signed-out request
        if not _is_poll():
            session["_last_seen"] = now
        return None
