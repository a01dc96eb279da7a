"""Login Now over real HTTP against the demo SageID: the full flow, every callback error, refresh, check."""
from __future__ import annotations

import re
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from oauth_flow import grant_redirect, panel_sign_in
from support import run_together

from panel import clock
from panel.crypto import decrypt
from panel.extensions import db
from panel.models import AuditEvent, Company, SageToken
from panel.redis_conn import get_redis
from panel.sage import api, store


def follow(http, url: str) -> requests.Response:
    return http.get(url)


def token_of(app):
    with app.app_context():
        db.session.remove()
        company = Company.query.filter_by(name="Demo Ltd").one()
        return store.current(company.id)


def token_requests(app) -> int:
    return int(get_redis(app).get("demo_sageid:token_requests") or 0)


def test_full_flow_stores_an_encrypted_token_and_audits(live_server):
    http = panel_sign_in(live_server.url)
    callback = grant_redirect(http, live_server.url)
    assert callback.startswith(f"{live_server.url}/settings/sage/callback?code=")
    landed = follow(http, callback)
    assert landed.url == f"{live_server.url}/settings/sage"
    assert "Connected to Sage" in landed.text and "Connected</span>" in landed.text
    token = token_of(live_server.app)
    assert token.generation == 1 and token.connected_by_name == "Alice Admin" and token.state == "ok"
    # The provider states refresh_token_expires_in (90 days from its own consent record), which wins.
    assert timedelta(days=90) - timedelta(seconds=5) < token.expires_at - token.consented_at <= timedelta(days=90)
    with live_server.app.app_context():
        assert decrypt(token.access_token_enc) not in landed.text  # never rendered
        assert [e.action for e in AuditEvent.query.all()] == ["connected"]
    # The callback answer itself sends no referrer (its URL carries the code).
    again = grant_redirect(http, live_server.url)
    resp = http.get(again, allow_redirects=False)
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert token_of(live_server.app).generation == 2


def test_demo_lifetime_from_refresh_token_expires_in(tmp_path, template_db, redis_server):
    from support import start_live

    with start_live(tmp_path, template_db, redis_server, SAGE_DEMO_TOKEN_LIFETIME_MINUTES=30) as server:
        http = panel_sign_in(server.url)
        follow(http, grant_redirect(http, server.url))
        token = token_of(server.app)
        assert timedelta(minutes=29) < token.expires_at - token.consented_at <= timedelta(minutes=30)
        page = http.get(f"{server.url}/settings/sage").text
        assert "Renew soon" in page  # 30 minutes left is well inside a 28-day reminder window


def _assert_nothing_stored(app):
    assert token_of(app) is None
    with app.app_context():
        assert AuditEvent.query.count() == 0


def test_access_denied_changes_nothing(live_server):
    http = panel_sign_in(live_server.url)
    callback = grant_redirect(http, live_server.url, choice="deny")
    assert "error=access_denied" in callback
    page = follow(http, callback)
    assert "Access was not granted, so nothing was changed." in page.text
    _assert_nothing_stored(live_server.app)


@pytest.mark.parametrize("query", ["code=abc", "code=abc&state=forged-state", "state=&code=abc", ""])
def test_missing_or_forged_state_is_refused(live_server, query):
    http = panel_sign_in(live_server.url)
    http.get(f"{live_server.url}/settings/sage/connect")  # a real state exists in this session, but is not sent
    page = http.get(f"{live_server.url}/settings/sage/callback?{query}")
    assert "This sign-in link has expired or was already used." in page.text
    _assert_nothing_stored(live_server.app)


def test_html_in_error_description_is_not_rendered(live_server):
    http = panel_sign_in(live_server.url)
    page = http.get(f"{live_server.url}/settings/sage/callback?error=server_error"
                    f"&error_description=%3Cscript%3Ealert(1)%3C/script%3E&state=x")
    assert "<script>alert(1)" not in page.text and "could not complete the sign-in" in page.text


def test_replayed_state_and_replayed_code_are_refused(live_server):
    http = panel_sign_in(live_server.url)
    callback = grant_redirect(http, live_server.url)
    assert "Connected to Sage" in follow(http, callback).text
    first = token_of(live_server.app)
    # The same callback again: its state was used up.
    assert "expired or was already used" in follow(http, callback).text
    # The old code with a fresh, valid state: the provider refuses the replayed code.
    http.get(f"{live_server.url}/settings/sage/connect", allow_redirects=False)
    fresh_state = parse_qs(urlsplit(http.get(f"{live_server.url}/settings/sage/connect",
                                             allow_redirects=False).headers["Location"]).query)["state"][0]
    old_code = parse_qs(urlsplit(callback).query)["code"][0]
    page = http.get(f"{live_server.url}/settings/sage/callback?code={old_code}&state={fresh_state}")
    assert "That sign-in code was already used or has expired." in page.text
    after = token_of(live_server.app)
    assert (after.generation, after.access_token_enc) == (first.generation, first.access_token_enc)


class _Broken(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.send_response(500)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<h1>Internal Server Error</h1>")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("failure", ["broken", "slow", "unreachable"])
def test_failing_or_slow_token_endpoint_changes_nothing(live_server, failure):
    app = live_server.app
    server = None
    if failure == "broken":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        app.config["SAGE_TOKEN_URL"] = f"http://127.0.0.1:{server.server_port}/oauth/token"
    elif failure == "slow":
        app.config["SAGE_DEMO_TOKEN_DELAY"] = 2
        app.config["SAGE_HTTP_TIMEOUT"] = 1
    else:
        app.config["SAGE_TOKEN_URL"] = "http://127.0.0.1:9/oauth/token"
    try:
        http = panel_sign_in(live_server.url)
        page = follow(http, grant_redirect(http, live_server.url))
        expected = {"broken": "Sage ID could not be reached or gave an unexpected answer",
                    "slow": "Sage ID did not answer in time",
                    "unreachable": "Sage ID could not be reached"}[failure]
        assert expected in page.text and "Nothing was changed" in page.text
        _assert_nothing_stored(app)
    finally:
        if server:
            server.shutdown()


def test_login_now_is_for_admins_only(live_server):
    http = panel_sign_in(live_server.url, "ben@example.com")
    assert http.get(f"{live_server.url}/settings/sage/connect", allow_redirects=False).status_code == 403
    assert http.get(f"{live_server.url}/settings/sage/callback?code=x&state=y").status_code == 403
    page = http.get(f"{live_server.url}/settings/sage").text
    assert "data-login-now" not in page and "Disconnect" not in page
    assert "Only an admin can connect Sage; ask Alice Admin" in page


def _connected(live_server) -> requests.Session:
    http = panel_sign_in(live_server.url)
    follow(http, grant_redirect(http, live_server.url))
    return http


def _expire_access_token(app):
    with app.app_context():
        db.session.execute(db.update(SageToken).values(access_expires_at=clock.now() - timedelta(minutes=1)))
        db.session.commit()


def test_twenty_concurrent_refreshes_make_one_token_request(live_server):
    app = live_server.app
    _connected(live_server)
    _expire_access_token(app)
    before = token_requests(app)
    company_id = token_of(app).company_id
    results, errors = run_together(app, 20, lambda: api.access_token(company_id))
    assert not errors, errors
    assert token_requests(app) - before == 1
    assert len(results) == 20 and len(set(results)) == 1
    with app.app_context():
        assert len(api.sites(company_id)) == 2  # the rotated refresh token and new access token work


def test_invalid_grant_marks_needs_login_and_pages_still_render(live_server):
    app = live_server.app
    http = _connected(live_server)
    with app.app_context():
        db.session.execute(db.update(SageToken).values(refresh_token_enc=store.encrypt("revoked-or-unknown")))
        db.session.commit()
    _expire_access_token(app)
    resp = http.post(f"{live_server.url}/settings/sage/check",
                     headers={"HX-Request": "true", "X-CSRFToken": _csrf(http, live_server.url)})
    assert resp.status_code == 200 and "Connection check failed" in resp.text and "needs a new Login Now" in resp.text
    token = token_of(app)
    assert token.state == "needs_login" and "invalid_grant" in token.state_reason
    page = http.get(f"{live_server.url}/settings/sage")
    assert page.status_code == 200 and "Needs Login Now" in page.text and "invalid_grant" in page.text
    with app.app_context():
        assert "refresh_failed" in [e.action for e in AuditEvent.query.all()]


def _csrf(http, base) -> str:
    return re.search(r'"X-CSRFToken": "([^"]+)"', http.get(f"{base}/settings/sage").text).group(1)


def test_check_connection_lists_sites_and_disconnect_removes_token(live_server):
    http = _connected(live_server)
    csrf = _csrf(http, live_server.url)
    headers = {"HX-Request": "true", "X-CSRFToken": csrf}
    check = http.post(f"{live_server.url}/settings/sage/check", headers=headers)
    assert check.status_code == 200 and "Connection OK" in check.text
    assert check.headers["HX-Trigger"] == "sage-token-changed"
    assert check.text.count("<tr>") == 3  # header + two demo sites
    gone = http.post(f"{live_server.url}/settings/sage/disconnect", headers=headers)
    assert gone.status_code == 200 and "Not connected" in gone.text
    assert token_of(live_server.app) is None
    with live_server.app.app_context():
        actions = [e.action for e in AuditEvent.query.order_by(AuditEvent.id)]
    assert actions == ["connected", "connection_checked", "disconnected"]
    failed = http.post(f"{live_server.url}/settings/sage/check", headers=headers)
    assert "Sage is not connected" in failed.text
