"""Timed widget polls are answered from a short per-process cache, without a database read."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import event
from support import connect_sage

from panel.extensions import db

POLL = {"HX-Request": "true", "X-Panel-Poll": "1"}


def count_queries(app, fn):
    seen = []
    with app.app_context():
        engine = db.engine
    listener = lambda *a, **k: seen.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        resp = fn()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return resp, seen


def connect(app):
    with app.app_context():
        connect_sage(at=datetime.now(timezone.utc) - timedelta(days=1))


def test_timed_poll_after_a_render_costs_no_query(app, admin):
    connect(app)
    first = admin.get("/settings/sage/widget", headers=dict(POLL))
    assert first.status_code == 200 and "Connected" in first.text
    again, queries = count_queries(app, lambda: admin.get("/settings/sage/widget", headers=dict(POLL)))
    assert again.status_code == 200 and again.text == first.text
    assert queries == []


def test_event_refresh_renders_afresh(app, admin):
    admin.get("/settings/sage/widget", headers=dict(POLL))  # caches "Not connected"
    connect(app)
    stale = admin.get("/settings/sage/widget", headers=dict(POLL))
    assert "Not connected" in stale.text  # within the cache's 30 s
    fresh = admin.get("/settings/sage/widget", htmx=True)  # what sage-token-changed sends
    assert "Connected</span>" in fresh.text
    assert "Connected</span>" in admin.get("/settings/sage/widget", headers=dict(POLL)).text


def test_cached_widget_is_not_served_without_a_session(app, admin, client):
    admin.get("/settings/sage/widget", headers=dict(POLL))
    anonymous = app.test_client().get("/settings/sage/widget", headers=dict(POLL))
    assert anonymous.status_code == 401 and anonymous.headers["HX-Redirect"].startswith("/login")


def test_roles_and_companies_get_their_own_fragment(app, admin, user, other_admin):
    admin_view = admin.get("/settings/sage/widget", headers=dict(POLL)).text
    user_view = user.get("/settings/sage/widget", headers=dict(POLL)).text
    other_view = other_admin.get("/settings/sage/widget", headers=dict(POLL)).text
    assert "data-login-now" in admin_view and "data-login-now" not in user_view
    connect(app)
    admin.get("/settings/sage/widget", htmx=True)  # Demo Ltd's admin fragment now says Connected
    assert "Not connected" in other_admin.get("/settings/sage/widget", headers=dict(POLL)).text
    assert other_view == other_admin.get("/settings/sage/widget", headers=dict(POLL)).text
