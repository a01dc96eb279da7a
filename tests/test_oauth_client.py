"""The OAuth client against a misbehaving local token endpoint and API: refresh without scope, terminal errors turn
the widget red, answers checked (types, bounds, size), and a TOTAL deadline for the code exchange, the refresh and
the /sites call."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from misbehaving_provider import GOOD_TOKEN, Provider
from oauth_flow import grant_redirect, panel_sign_in
from support import base_env, connect_sage, make_app

from panel.extensions import db
from panel.models import AuditEvent, Company, SageToken
from panel.sage import api, store

QUICK = 6.0  # seconds: far above the 1 s deadline used here, far below the minute a drip lasts


@pytest.fixture
def provider():
    with Provider() as fake:
        yield fake


def demo_token(app, access_seconds=30) -> int:
    """Store a token whose access token is about to run out (so the next API call refreshes); its company id."""
    with app.app_context():
        return connect_sage(access_seconds=access_seconds).company_id


def current(app) -> SageToken:
    with app.app_context():
        db.session.remove()
        company = db.session.execute(db.select(Company).filter_by(name="Demo Ltd")).scalar_one()
        return store.current(company.id)


def test_refresh_sends_no_scope_and_stores_a_stated_one(app, provider):
    company_id = demo_token(app)
    app.config["SAGE_TOKEN_URL"] = provider.url + "/oauth/token"
    provider.answer = ("json", 200, dict(GOOD_TOKEN, scope="openid offline_access"))
    with app.app_context():
        assert api.access_token(company_id) == "fresh-access"
    (sent,) = provider.requests
    assert sent["form"]["grant_type"] == "refresh_token" and sent["form"]["refresh_token"] == "r"
    assert "scope" not in sent["form"]  # never more than granted (RFC 6749 §6); authlib would add SAGE_SCOPES
    assert current(app).scope == "openid offline_access"


def test_invalid_scope_on_refresh_turns_the_widget_red_with_the_reason(app, admin, provider):
    demo_token(app)
    app.config["SAGE_TOKEN_URL"] = provider.url + "/oauth/token"
    provider.answer = ("json", 400, {"error": "invalid_scope",
                                     "error_description": "offline_access was not granted"})
    check = admin.post("/settings/sage/check")
    assert "needs a new Login Now" in check.text and "invalid_scope" in check.text
    widget = admin.get("/settings/sage/widget", htmx=True).text
    assert "Needs Login Now</span>" in widget and "widget-red" in widget
    assert "invalid_scope: offline_access was not granted" in widget
    assert current(app).state == "needs_login"
    again = admin.post("/settings/sage/check")  # no retry storm: the token is parked until Login Now
    assert "needs a new Login Now" in again.text and len(provider.requests) == 1
    with app.app_context():
        assert "refresh_failed" in [e.action for e in db.session.execute(db.select(AuditEvent)).scalars()]


@pytest.mark.parametrize("answer, says, unknown", [
    (("json", 503, {"error": "temporarily_unavailable"}), "Please try again", False),  # an OAuth error: not exchanged
    (("raw", 502, b"<h1>Bad gateway</h1>"), "not known whether it renewed the token", True),  # a gateway's page
    (("json", 200, dict(GOOD_TOKEN, access_token=12345)), "not known whether it renewed the token", True),
])
def test_errors_retrying_can_fix_keep_the_token(app, admin, provider, answer, says, unknown):
    demo_token(app)
    app.config["SAGE_TOKEN_URL"] = provider.url + "/oauth/token"
    provider.answer = answer
    check = admin.post("/settings/sage/check")
    assert check.status_code == 200 and says in check.text
    assert current(app).state == "ok"
    assert "Connected</span>" in admin.get("/settings/sage/widget", htmx=True).text
    # An answer that may have come after a rotation keeps the refresh token unused for the lock's term.
    again = admin.post("/settings/sage/check")
    assert len(provider.requests) == (1 if unknown else 2), again.text


@pytest.mark.parametrize("answer", [("drip_body",), ("drip_headers",)])
def test_refresh_has_a_total_deadline(app, admin, provider, answer):
    demo_token(app)
    app.config.update(SAGE_TOKEN_URL=provider.url + "/oauth/token", SAGE_HTTP_TIMEOUT=1)
    provider.answer = answer
    started = time.monotonic()
    check = admin.post("/settings/sage/check")
    assert time.monotonic() - started < QUICK
    assert "did not answer in time" in check.text and current(app).state == "ok"


def test_sites_call_has_a_total_deadline_and_a_size_cap(app, admin, provider):
    demo_token(app, access_seconds=3600)  # a valid access token: straight to GET /sites
    app.config.update(SAGE_API_BASE=provider.url, SAGE_HTTP_TIMEOUT=1)
    provider.answer = ("drip_body",)
    started = time.monotonic()
    assert "The Sage API did not answer in time." in admin.post("/settings/sage/check").text
    assert time.monotonic() - started < QUICK
    provider.answer = ("huge", False)
    assert "more data than expected" in admin.post("/settings/sage/check").text
    assert provider.requests[-1]["path"] == "/sites"


BAD_ANSWERS = {  # case: (what the token endpoint does, what the page says, SAGE_HTTP_TIMEOUT)
    "number token": (("json", 200, dict(GOOD_TOKEN, access_token=12345)), "access_token is not a non-empty string", 10),
    "list token": (("json", 200, dict(GOOD_TOKEN, access_token=["a"])), "access_token is not a non-empty string", 10),
    "expires_in 10**15": (("json", 200, dict(GOOD_TOKEN, expires_in=10 ** 15)), "expires_in is out of bounds", 10),
    "20 MB declared": (("huge", True), "answered with too much data", 10),
    "20 MB undeclared": (("huge", False), "answered with too much data", 10),
    "html 500": (("raw", 500, b"<h1>Internal Server Error</h1>"), "the server is unavailable", 10),
    "dripped body": (("drip_body",), "did not answer in time", 1),
    "dripped headers": (("drip_headers",), "did not answer in time", 1),
}


@pytest.mark.parametrize("case", list(BAD_ANSWERS))
def test_code_exchange_refuses_bad_answers_and_changes_nothing(live_server, provider, case):
    answer, message, deadline = BAD_ANSWERS[case]
    app = live_server.app
    app.config.update(SAGE_TOKEN_URL=provider.url + "/oauth/token", SAGE_HTTP_TIMEOUT=deadline)
    provider.answer = answer
    http = panel_sign_in(live_server.url)
    callback = grant_redirect(http, live_server.url)
    started = time.monotonic()
    page = http.get(callback)
    assert time.monotonic() - started < QUICK
    assert page.status_code == 200 and message in page.text and "Nothing was changed" in page.text
    assert current(app) is None
    if deadline > 1:  # (a dripping endpoint may not even have read the request when the deadline passes)
        (sent,) = provider.requests
        assert sent["form"]["grant_type"] == "authorization_code" and sent["form"]["code_verifier"]


def test_granted_scope_is_stored_and_shown(live_server, provider):
    app = live_server.app
    app.config["SAGE_TOKEN_URL"] = provider.url + "/oauth/token"
    provider.answer = ("json", 200, dict(GOOD_TOKEN, scope="openid offline_access"))
    http = panel_sign_in(live_server.url)
    landed = http.get(grant_redirect(http, live_server.url))
    assert "Connected to Sage" in landed.text
    assert current(app).scope == "openid offline_access"
    assert 'data-testid="granted-scope">openid offline_access<' in landed.text


def test_unstated_scope_means_the_requested_one(live_server, provider):
    app = live_server.app
    app.config["SAGE_TOKEN_URL"] = provider.url + "/oauth/token"
    http = panel_sign_in(live_server.url)
    http.get(grant_redirect(http, live_server.url))
    assert current(app).scope == app.config["SAGE_SCOPES"]


def authorize_query(app) -> dict:
    from support import Session

    admin = Session(app.test_client(), "admin@example.com")
    location = admin.get("/settings/sage/connect").headers["Location"]
    return parse_qs(urlsplit(location).query)


def test_prompt_is_not_sent_by_default(app):
    assert "prompt" not in authorize_query(app)


def test_sage_prompt_is_sent_when_configured(tmp_path, template_db, redis_server):
    app = make_app(tmp_path, template_db, redis_server, ENV_VARS=base_env(SAGE_PROMPT="consent"))
    assert authorize_query(app)["prompt"] == ["consent"]



def test_a_token_no_key_can_decrypt_needs_login_now(app, admin, provider):
    from cryptography.fernet import Fernet

    demo_token(app)
    app.config.update(PANEL_ENCRYPTION_KEYS=[Fernet.generate_key().decode()],  # the old key was removed
                      SAGE_TOKEN_URL=provider.url + "/oauth/token")
    check = admin.post("/settings/sage/check")
    assert check.status_code == 200 and "cannot be decrypted" in check.text
    assert current(app).state == "needs_login" and provider.requests == []
    assert "Needs Login Now</span>" in admin.get("/settings/sage/widget", htmx=True).text


def test_bounded_http_works_where_an_event_loop_already_runs(provider):
    """anyio refuses a second event loop in a thread that runs one (Playwright's sync API does, in tests)."""
    import asyncio

    from panel.sage.http import request

    provider.answer = ("json", 200, {"ok": 1})

    async def inside_a_running_loop():
        return request("POST", provider.url + "/t", data={"a": "b"}, deadline=5, max_bytes=1000)

    reply = asyncio.run(inside_a_running_loop())
    assert reply.status == 200 and reply.json() == {"ok": 1}
