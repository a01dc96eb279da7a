"""The token widget's response: rendered on change events, and answered from a short-lived per-process cache for
timed polls, so a 60-second poll costs about a bare request.

Only requests marked as timed polls (``X-Panel-Poll: 1``, set by static/sage.js) are answered from it. Every
event-driven refresh (a change on this page, the Login Now window, a tab becoming visible) renders afresh and
refreshes the cache, so the person who made a change sees it at once; other open tabs see it within
FRAGMENT_TTL + their poll interval. The fragment holds company-level data only (no CSRF token, nothing personal),
so one copy serves every user of the company with the same role.
"""
from __future__ import annotations

import time

from flask import Flask, current_app, request, session
from flask_login import current_user

from ..render import fragment
from ..sessions import poll_endpoint
from .presenter import widget_context

FRAGMENT_TTL = 30.0   # seconds a rendered widget may be served to timed polls
IDENTITY_TTL = 10.0   # seconds a session's user id maps to (company, role) without a database read
MAX_ENTRIES = 10_000  # bounds memory: the cache is simply emptied when it grows past this


def _state(app: Flask) -> dict:
    return app.extensions.setdefault("panel_widget_cache", {"who": {}, "html": {}})


def lookup(app: Flask, user_id: str | None) -> bytes | None:
    """The cached fragment for this session's user, or None (not cached, expired, or no user)."""
    if not user_id:
        return None
    state, now = _state(app), time.monotonic()
    who = state["who"].get(user_id)
    if who is None or who[0] < now:
        return None
    html = state["html"].get(who[1])
    if html is None or html[0] < now:
        return None
    return html[1]


def store(app: Flask, user, body: bytes) -> None:
    """Remember the fragment just rendered for ``user``'s company and role."""
    state, now = _state(app), time.monotonic()
    key = (user.company_id, bool(user.is_admin))
    for table in state.values():
        if len(table) > MAX_ENTRIES:
            table.clear()
    state["who"][str(user.id)] = (now + IDENTITY_TTL, key)
    state["html"][key] = (now + FRAGMENT_TTL, body)


@poll_endpoint
def widget():
    """The token widget partial, polled every 60 s (answered from a short cache) and refreshed on change events."""
    if request.headers.get("X-Panel-Poll") == "1":
        cached = lookup(current_app, session.get("_user_id"))
        if cached is not None:
            return current_app.response_class(cached, mimetype="text/html")
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    resp = fragment("settings/_token_widget.html", **widget_context(current_user.company))
    store(current_app, current_user, resp.get_data())
    return resp
