"""The token widget's response: rendered on change events, and answered from a short-lived per-process cache for
timed polls, so a 60-second poll costs about a bare request.

Only requests marked as timed polls (``X-Panel-Poll: 1``, set by static/sage.js) are answered from it. Every
event-driven refresh (a change on this page, the Login Now window, a tab becoming visible) renders afresh and
refreshes the cache, so the person who made a change sees it at once; other open tabs see it within
FRAGMENT_TTL + their poll interval. The fragment holds company-level data only (no CSRF token, nothing personal),
so one copy serves every user of the company with the same role.

A cached answer is given to a session only while that session's user's revocation marker in Redis
(``panel.sessions.read_signal``) is the one seen when the session was last checked against the database: sign-out,
sign out everywhere, a password change or a deactivation replaces the marker, so the very next poll goes to the
database and is refused. One Redis GET per poll, no database read. When Redis cannot be asked, nothing is served
from the cache.
"""
from __future__ import annotations

import time

from flask import Flask, current_app, request, session
from flask_login import current_user

from ..render import fragment
from ..sessions import SID, poll_endpoint, read_signal
from .presenter import widget_context

FRAGMENT_TTL = 30.0   # seconds a rendered widget may be served to timed polls
IDENTITY_TTL = 10.0   # seconds a session maps to (user, company, role) without a database read (marker still checked)
MAX_ENTRIES = 10_000  # bounds memory: the cache is simply emptied when it grows past this


def _state(app: Flask) -> dict:
    return app.extensions.setdefault("panel_widget_cache", {"who": {}, "html": {}})


def lookup(app: Flask, sid: str | None) -> bytes | None:
    """The cached fragment for this session, or None (not cached, expired, no session, or revoked/unknown)."""
    if not sid:
        return None
    state, now = _state(app), time.monotonic()
    who = state["who"].get(sid)
    if who is None or who[0] < now:
        return None
    html = state["html"].get(who[2])
    if html is None or html[0] < now:
        return None
    if read_signal(app, who[1]) != who[3]:
        return None  # a session of this user ended since (or Redis can't tell): check the database
    return html[1]


def store(app: Flask, sid: str, user, signal: bytes, body: bytes) -> None:
    """Remember the fragment just rendered for ``user``'s company and role, and this session's marker."""
    state, now = _state(app), time.monotonic()
    key = (user.company_id, bool(user.is_admin))
    for table in state.values():
        if len(table) > MAX_ENTRIES:
            table.clear()
    state["who"][sid] = (now + IDENTITY_TTL, user.id, key, signal)
    state["html"][key] = (now + FRAGMENT_TTL, body)


@poll_endpoint
def widget():
    """The token widget partial, polled every 60 s (answered from a short cache) and refreshed on change events."""
    sid = session.get(SID)
    if request.headers.get("X-Panel-Poll") == "1":
        cached = lookup(current_app, sid)
        if cached is not None:
            return current_app.response_class(cached, mimetype="text/html")
    # Read the marker BEFORE the database check below: a revocation committed after that check replaces the
    # marker after this read, so the entry stored here can never match again.
    signal = read_signal(current_app, session.get("_user_id"))
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    resp = fragment("settings/_token_widget.html", **widget_context(current_user.company))
    if signal is not None and sid:
        store(current_app, sid, current_user, signal, resp.get_data())
    return resp
