"""Demo SageID: the stand-in OAuth 2.0 provider — pages, code + PKCE, rotating refresh tokens, /api/sites."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from support import base_env, csrf_from, make_app

from panel import clock, create_app

CLIENT_ID = "sage-panel-demo"
DEMO_EMAIL = "sage.demo@example.com"
DEMO_PASSWORD = "demo-sage-200"
SCOPE = "openid profile email offline_access"
AUDIENCE = "s200ukipd/sage200"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
NINETY_DAYS = 90 * 24 * 3600
EXPECTED_SITES = [
    {"site_id": "9a1c4d2e-3b7f-4e21-8c55-0d6f2a1b7e01", "site_name": "Demo Trading Ltd",
     "company_id": 1, "company_name": "Demo Trading Ltd"},
    {"site_id": "4f8b2c6a-91d3-4a7e-b2f0-5c3e8d9a6b02", "site_name": "Demo Manufacturing Ltd",
     "company_id": 2, "company_name": "Demo Manufacturing Ltd"},
]
TOKEN_KEYS = {"access_token", "token_type", "expires_in", "refresh_token", "scope", "refresh_token_expires_in"}


# -- helpers -------------------------------------------------------------------------------------------------------

def challenge_for(verifier: str) -> str:
    """RFC 7636 S256, computed here independently of authlib."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


def callback(app) -> str:
    return app.config["PANEL_BASE_URL"] + "/settings/sage/callback"


def auth_url(app, verifier: str, **changes) -> str:
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": callback(app), "scope": SCOPE,
              "state": "state-123", "code_challenge": challenge_for(verifier), "code_challenge_method": "S256",
              "audience": AUDIENCE}
    params.update(changes)
    return "/demo-sageid/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


def sign_in(client, url, email=DEMO_EMAIL, password=DEMO_PASSWORD):
    token = csrf_from(client.get(url).text)
    return client.post(url, data={"csrf_token": token, "action": "sign_in", "email": email, "password": password})


def decide(client, url, action):
    token = csrf_from(client.get(url).text)
    return client.post(url, data={"csrf_token": token, "action": action})


def get_code(client, app, verifier, **changes) -> str:
    url = auth_url(app, verifier, **changes)
    assert sign_in(client, url).status_code == 303
    resp = decide(client, url, "grant")
    assert resp.status_code == 302, resp.text
    return query_of(resp.headers["Location"])["code"]


def token_request(client, app, **data):
    form = {"client_id": CLIENT_ID, "client_secret": app.config["SAGE_CLIENT_SECRET"]}
    form.update(data)
    return client.post("/demo-sageid/oauth/token", data={k: v for k, v in form.items() if v is not None})


def exchange(client, app, code, verifier, /, **changes):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": callback(app), "code_verifier": verifier}
    data.update(changes)
    return token_request(client, app, **data)


def refresh(client, app, refresh_token):
    return token_request(client, app, grant_type="refresh_token", refresh_token=refresh_token)


def connect(client, app) -> dict:
    """Sign in, grant and exchange: the token response."""
    verifier = new_verifier()
    resp = exchange(client, app, get_code(client, app, verifier), verifier)
    assert resp.status_code == 200, resp.text
    return resp.json


def sites(client, access_token=None):
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return client.get("/demo-sageid/api/sites", headers=headers)


def token_count(app):
    from panel.demo_sageid.models import DemoToken
    from panel.extensions import db

    with app.app_context():
        return db.session.query(DemoToken).count()


# -- configuration ---------------------------------------------------------------------------------------------------

def test_demo_mode_points_sage_settings_at_itself(app):
    base = app.config["PANEL_BASE_URL"]
    assert base == "http://127.0.0.1:5000"
    assert app.config["SAGE_DEMO_ACTIVE"] is True
    assert app.config["SAGE_CLIENT_ID"] == CLIENT_ID
    expected_secret = hmac.new(app.config["SECRET_KEY"].encode(), b"demo-sageid client secret",
                               hashlib.sha256).hexdigest()
    assert app.config["SAGE_CLIENT_SECRET"] == expected_secret and len(expected_secret) == 64
    assert app.config["SAGE_AUTHORIZE_URL"] == "http://127.0.0.1:5000/demo-sageid/authorize"
    assert app.config["SAGE_TOKEN_URL"] == "http://127.0.0.1:5000/demo-sageid/oauth/token"
    assert app.config["SAGE_API_BASE"] == "http://127.0.0.1:5000/demo-sageid/api"
    assert "demo_sageid" in app.blueprints


def test_inactive_when_a_real_client_id_is_configured(tmp_path, template_db, redis_server):
    env = base_env(SAGE_CLIENT_ID="real-client", SAGE_CLIENT_SECRET="real-secret")
    app = make_app(tmp_path, template_db, redis_server, ENV_VARS=env)
    assert app.config["SAGE_DEMO_ACTIVE"] is False
    assert app.config["SAGE_CLIENT_ID"] == "real-client" and app.config["SAGE_CLIENT_SECRET"] == "real-secret"
    assert app.config["SAGE_AUTHORIZE_URL"] == "https://id.sage.com/authorize"
    assert app.config["SAGE_TOKEN_URL"] == "https://id.sage.com/oauth/token"
    assert app.config["SAGE_API_BASE"] == "https://api.columbus.sage.com/uk/sage200/accounts/v1"
    assert "demo_sageid" not in app.blueprints
    client = app.test_client()
    assert client.get("/demo-sageid/authorize").status_code == 404
    assert client.post("/demo-sageid/oauth/token", data={"grant_type": "refresh_token"}).status_code == 404
    assert client.get("/demo-sageid/api/sites").status_code == 404


def test_inactive_in_production(tmp_path):
    from cryptography.fernet import Fernet

    env = {"PANEL_ENV": "production", "SECRET_KEY": "u0Ksh324CuKrhDJofogUU-0I3IceBGdMtH-bohvLXrebwquu4Bj6xV3uA6_T2qts", "PANEL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
           "DATABASE_URL": "postgresql://panel:pw@db.internal/panel", "REDIS_URL": "redis://redis.internal:6379/0",
           "MAIL_SERVER": "smtp.internal", "SAGE_CLIENT_ID": "client-id", "SAGE_CLIENT_SECRET": "client-secret",
           "PANEL_BASE_URL": "https://crm.example.com"}
    app = create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": env})
    assert app.config["SAGE_DEMO_ACTIVE"] is False and "demo_sageid" not in app.blueprints
    assert app.config["SAGE_AUTHORIZE_URL"] == "https://id.sage.com/authorize"


@pytest.mark.parametrize("demo, production", [(True, True), (False, False), (False, True)])
def test_init_app_refuses_production_even_if_demo_is_forced(demo, production):
    from panel import demo_sageid

    app = Flask(__name__)
    original = {"SAGE_DEMO": demo, "PRODUCTION": production, "SECRET_KEY": "k" * 40,
                "PANEL_BASE_URL": "https://crm.example.com", "SAGE_CLIENT_ID": "",
                "SAGE_AUTHORIZE_URL": "https://id.sage.com/authorize"}
    app.config.update(original)
    demo_sageid.init_app(app)
    assert {k: app.config[k] for k in original} == original
    assert app.config["SAGE_DEMO_ACTIVE"] is False
    assert app.blueprints == {} and "demo_sageid" not in app.extensions


# -- sign-in and consent pages ---------------------------------------------------------------------------------------

def test_sign_in_page_is_labelled_demo_and_shows_the_account(client, app):
    resp = client.get(auth_url(app, new_verifier()))
    assert resp.status_code == 200
    assert "Demo stand-in for Sage ID." in resp.text
    assert f"<code>{DEMO_EMAIL}</code>" in resp.text and f"<code>{DEMO_PASSWORD}</code>" in resp.text
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]+">', resp.text)
    assert "<script>" not in resp.text and "style=" not in resp.text and " onclick" not in resp.text


def test_wrong_password_stays_on_sign_in(client, app):
    url = auth_url(app, new_verifier())
    resp = sign_in(client, url, password="nope")
    assert resp.status_code == 401
    assert "Email or password is incorrect. Use the demo account shown above." in resp.text
    assert "Allow access?" not in client.get(url).text


def test_sign_in_needs_the_csrf_token(client, app):
    url = auth_url(app, new_verifier())
    resp = client.post(url, data={"action": "sign_in", "email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert resp.status_code == 400
    assert "Allow access?" not in client.get(url).text


def test_demo_sign_in_is_separate_from_the_panel_login(client, app):
    url = auth_url(app, new_verifier())
    resp = sign_in(client, url)
    assert resp.status_code == 303 and resp.headers["Location"] == url
    with client.session_transaction() as sess:
        assert sess["demo_sageid_account"] == DEMO_EMAIL and "_user_id" not in sess
    assert client.get("/settings/sage").status_code == 302  # still not signed in to the panel


def test_consent_page_says_what_is_granted(client, app):
    url = auth_url(app, new_verifier())
    sign_in(client, url)
    resp = client.get(url)
    assert resp.status_code == 200 and resp.headers["Referrer-Policy"] == "no-referrer"
    message = re.search(r'<p class="consent-message" id="consent-message">([^<]*)</p>', resp.text).group(1)
    assert message == "CRM Sage panel wants to access your Sage 200 data (audience s200ukipd/sage200):"
    items = re.findall(r"<li>([^<]*)</li>", resp.text)
    assert items == ["Read your sites and companies", "Confirm that it is you (openid)", "See your name (profile)",
                     "See your email address (email)", "Stay connected while you are away (offline access)"]
    assert "Access lasts 90 days from the moment you grant it." in resp.text
    assert re.findall(r'<button type="submit" name="action" value="(\w+)"[^>]*>(\w+)</button>', resp.text) == [
        ("deny", "Deny"), ("grant", "Grant")]
    assert "Signed in as sage.demo@example.com" in resp.text


def test_consent_page_shows_the_short_demo_lifetime(client, app):
    app.config["SAGE_DEMO_TOKEN_LIFETIME_MINUTES"] = 5
    url = auth_url(app, new_verifier())
    sign_in(client, url)
    assert "Access lasts 5 minutes from the moment you grant it." in client.get(url).text


def test_deny_redirects_with_access_denied_and_state(client, app):
    url = auth_url(app, new_verifier(), state="deny-state")
    sign_in(client, url)
    resp = decide(client, url, "deny")
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.split("?")[0] == callback(app)
    assert query_of(location) == {"error": "access_denied", "state": "deny-state",
                                  "error_description": "The resource owner or authorization server denied the request"}
    assert token_count(app) == 0


def test_grant_redirects_with_code_and_state_and_stores_only_a_hash(client, app):
    from panel.demo_sageid.models import DemoAuthorizationCode

    url = auth_url(app, new_verifier(), state="grant-state")
    sign_in(client, url)
    resp = decide(client, url, "grant")
    assert resp.status_code == 302 and resp.headers["Location"].split("?")[0] == callback(app)
    params = query_of(resp.headers["Location"])
    assert set(params) == {"code", "state"} and params["state"] == "grant-state" and len(params["code"]) == 48
    with app.app_context():
        rows = DemoAuthorizationCode.query.all()
        assert [r.code_hash for r in rows] == [hashlib.sha256(params["code"].encode()).hexdigest()]
        assert rows[0].audience == AUDIENCE and rows[0].scope == SCOPE and rows[0].code_challenge_method == "S256"


def test_switch_account_signs_out_of_demo_sageid_only(client, app):
    url = auth_url(app, new_verifier())
    sign_in(client, url)
    resp = decide(client, url, "switch")
    assert resp.status_code == 303
    page = client.get(url).text
    assert "Allow access?" not in page and "Sign in to Sage ID (demo)" in page


@pytest.mark.parametrize("changes", [
    {"redirect_uri": "http://127.0.0.1:5000/settings/sage/callback/"},
    {"redirect_uri": "http://127.0.0.1:5000/settings/sage/callback?x=1"},
    {"redirect_uri": "http://127.0.0.1:5000/settings/sage/callbackx"},
    {"redirect_uri": "HTTP://127.0.0.1:5000/settings/sage/callback"},
    {"redirect_uri": "https://evil.example/settings/sage/callback"},
    {"redirect_uri": None},
    {"client_id": "someone-else"},
    {"client_id": None},
])
def test_bad_client_or_redirect_uri_gets_an_error_page_never_a_redirect(client, app, changes):
    url = auth_url(app, new_verifier(), **changes)
    resp = client.get(url)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert "This sign-in request was refused" in resp.text
    # Signed in and pressing Grant changes nothing either.
    sign_in(client, auth_url(app, new_verifier()))
    resp = client.post(url, data={"csrf_token": csrf_from(client.get(url).text), "action": "grant"})
    assert resp.status_code == 400 and "Location" not in resp.headers


@pytest.mark.parametrize("changes, error", [
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"response_type": "token"}, "unsupported_response_type"),
])
def test_invalid_requests_go_back_to_the_client_with_an_error(client, app, changes, error):
    resp = client.get(auth_url(app, new_verifier(), state="s-1", **changes))
    assert resp.status_code == 302 and resp.headers["Location"].split("?")[0] == callback(app)
    params = query_of(resp.headers["Location"])
    assert params["error"] == error and params["state"] == "s-1" and "code" not in params


# -- token endpoint: authorization code ------------------------------------------------------------------------------

def test_code_exchange_with_the_right_verifier(client, app):
    from panel.redis_conn import get_redis

    clock.freeze(T0)
    verifier = new_verifier()
    code = get_code(client, app, verifier)
    clock.freeze(T0 + timedelta(seconds=10))
    resp = exchange(client, app, code, verifier)
    assert resp.status_code == 200, resp.text
    body = resp.json
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "Bearer" and body["expires_in"] == 480 and body["scope"] == SCOPE
    assert body["refresh_token_expires_in"] == NINETY_DAYS - 10
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    assert get_redis(app).get("demo_sageid:token_requests") == b"1"


def test_access_token_lifetime_is_configurable(client, app):
    app.config["SAGE_DEMO_ACCESS_TOKEN_SECONDS"] = 120
    assert connect(client, app)["expires_in"] == 120


def test_client_secret_basic_works_too(client, app):
    verifier = new_verifier()
    code = get_code(client, app, verifier)
    basic = base64.b64encode(f"{CLIENT_ID}:{app.config['SAGE_CLIENT_SECRET']}".encode()).decode()
    resp = client.post("/demo-sageid/oauth/token", headers={"Authorization": f"Basic {basic}"}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": callback(app), "code_verifier": verifier})
    assert resp.status_code == 200 and set(resp.json) == TOKEN_KEYS


@pytest.mark.parametrize("changes, status, error", [
    ({"code_verifier": None}, 400, "invalid_request"),
    ({"code_verifier": "w" * 64}, 400, "invalid_grant"),
    ({"code_verifier": "bad verifier!"}, 400, "invalid_request"),
    ({"redirect_uri": "http://127.0.0.1:5000/settings/sage/other"}, 400, "invalid_grant"),
    ({"redirect_uri": None}, 400, "invalid_grant"),
    ({"client_secret": "0" * 64}, 401, "invalid_client"),
    ({"client_secret": None}, 401, "invalid_client"),
    ({"client_id": "someone-else"}, 400, "invalid_client"),
    ({"code": "not-a-code"}, 400, "invalid_grant"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
])
def test_code_exchange_failures(client, app, changes, status, error):
    verifier = new_verifier()
    code = get_code(client, app, verifier)
    resp = exchange(client, app, code, verifier, **changes)
    assert resp.status_code == status and resp.json["error"] == error
    assert token_count(app) == 0


def test_a_replayed_code_fails_and_revokes_what_it_issued(client, app):
    verifier = new_verifier()
    code = get_code(client, app, verifier)
    first = exchange(client, app, code, verifier)
    assert first.status_code == 200
    assert sites(client, first.json["access_token"]).status_code == 200
    again = exchange(client, app, code, verifier)
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"
    assert sites(client, first.json["access_token"]).status_code == 401
    assert refresh(client, app, first.json["refresh_token"]).json["error"] == "invalid_grant"


@pytest.mark.parametrize("after, status", [(59, 200), (61, 400)])
def test_codes_expire_after_60_seconds(client, app, after, status):
    clock.freeze(T0)
    verifier = new_verifier()
    code = get_code(client, app, verifier)
    clock.freeze(T0 + timedelta(seconds=after))
    assert exchange(client, app, code, verifier).status_code == status


# -- token endpoint: refresh -----------------------------------------------------------------------------------------

def test_refresh_rotates_the_refresh_token(client, app):
    first = connect(client, app)
    second = refresh(client, app, first["refresh_token"])
    assert second.status_code == 200 and set(second.json) == TOKEN_KEYS
    assert second.json["refresh_token"] != first["refresh_token"]
    assert second.json["access_token"] != first["access_token"]
    assert second.json["scope"] == SCOPE and second.json["expires_in"] == 480
    third = refresh(client, app, second.json["refresh_token"])
    assert third.status_code == 200 and third.json["refresh_token"] not in {first["refresh_token"],
                                                                            second.json["refresh_token"]}


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(client, app):
    first = connect(client, app)
    other = connect(app.test_client(), app)  # a separate consent must survive
    second = refresh(client, app, first["refresh_token"]).json
    reuse = refresh(client, app, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json["error"] == "invalid_grant"
    assert refresh(client, app, second["refresh_token"]).json["error"] == "invalid_grant"
    assert sites(client, first["access_token"]).status_code == 401
    assert sites(client, second["access_token"]).status_code == 401
    assert sites(client, other["access_token"]).status_code == 200
    assert refresh(client, app, other["refresh_token"]).status_code == 200


def test_refresh_counts_every_token_request(client, app):
    from panel.redis_conn import get_redis

    first = connect(client, app)
    refresh(client, app, first["refresh_token"])
    refresh(client, app, "unknown")
    assert get_redis(app).get("demo_sageid:token_requests") == b"3"


def test_refresh_never_extends_the_absolute_lifetime(client, app):
    clock.freeze(T0)
    first = connect(client, app)
    assert first["refresh_token_expires_in"] == NINETY_DAYS
    clock.freeze(T0 + timedelta(days=1))
    second = refresh(client, app, first["refresh_token"]).json
    assert second["refresh_token_expires_in"] == NINETY_DAYS - 86400
    clock.freeze(T0 + timedelta(days=90, seconds=-1))
    last = refresh(client, app, second["refresh_token"]).json
    assert last["refresh_token_expires_in"] == 1
    clock.freeze(T0 + timedelta(days=90))
    resp = refresh(client, app, last["refresh_token"])
    assert resp.status_code == 400 and resp.json["error"] == "invalid_grant"


def test_short_demo_lifetime_in_minutes(client, app):
    app.config["SAGE_DEMO_TOKEN_LIFETIME_MINUTES"] = 5
    clock.freeze(T0)
    first = connect(client, app)
    assert first["refresh_token_expires_in"] == 300
    clock.freeze(T0 + timedelta(seconds=120))
    assert refresh(client, app, first["refresh_token"]).json["refresh_token_expires_in"] == 180
    clock.freeze(T0 + timedelta(seconds=301))
    assert refresh(client, app, first["refresh_token"]).json["error"] == "invalid_grant"


def test_token_delay_slows_the_token_endpoint(client, app):
    app.config["SAGE_DEMO_TOKEN_DELAY"] = 0.3
    started = time.monotonic()
    resp = refresh(client, app, "unknown")
    assert resp.status_code == 400 and time.monotonic() - started >= 0.3


def test_database_holds_no_code_or_token_in_clear(client, app):
    verifier = new_verifier()
    code = get_code(client, app, verifier)
    first = exchange(client, app, code, verifier).json
    second = refresh(client, app, first["refresh_token"]).json
    raw = open(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"), "rb").read()
    for secret in (code, first["access_token"], first["refresh_token"], second["access_token"],
                   second["refresh_token"]):
        assert secret.encode() not in raw
        assert hashlib.sha256(secret.encode()).hexdigest().encode() in raw


# -- /api/sites ------------------------------------------------------------------------------------------------------

def test_sites_with_a_valid_bearer_token(client, app):
    resp = sites(client, connect(client, app)["access_token"])
    assert resp.status_code == 200 and resp.json == EXPECTED_SITES


def test_sites_without_a_token_is_a_bare_bearer_challenge(client):
    resp = sites(client)
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == 'Bearer realm="demo-sageid"'


@pytest.mark.parametrize("after, status", [(479, 200), (480, 401)])
def test_sites_with_an_expired_token(client, app, after, status):
    clock.freeze(T0)
    token = connect(client, app)["access_token"]
    clock.freeze(T0 + timedelta(seconds=after))
    resp = sites(client, token)
    assert resp.status_code == status
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="demo-sageid", error="invalid_token"')
        assert resp.json["error"] == "invalid_token"


def test_sites_with_an_unknown_token(client):
    resp = sites(client, "made-up-token")
    assert resp.status_code == 401 and resp.json["error"] == "invalid_token"
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


# -- over real HTTP --------------------------------------------------------------------------------------------------

def test_full_flow_over_real_http(live_server):
    import requests
    from authlib.integrations.requests_client import OAuth2Session

    app, base = live_server.app, live_server.url
    verifier = new_verifier()
    browser = requests.Session()
    url = base + auth_url(app, verifier, state="live-state")
    page = browser.get(url, timeout=10)
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    resp = browser.post(url, timeout=10, allow_redirects=False, data={
        "csrf_token": csrf_from(page.text), "action": "sign_in", "email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert resp.status_code == 303
    consent = browser.get(url, timeout=10)
    resp = browser.post(url, timeout=10, allow_redirects=False,
                        data={"csrf_token": csrf_from(consent.text), "action": "grant"})
    location = resp.headers["Location"]
    assert resp.status_code == 302 and location.startswith(f"{base}/settings/sage/callback?")

    oauth = OAuth2Session(app.config["SAGE_CLIENT_ID"], app.config["SAGE_CLIENT_SECRET"], scope=SCOPE,
                          redirect_uri=callback(app), token_endpoint_auth_method="client_secret_basic", state="live-state")
    token = oauth.fetch_token(app.config["SAGE_TOKEN_URL"], authorization_response=location, code_verifier=verifier,
                              timeout=10)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 480
    assert 0 < token["refresh_token_expires_in"] <= NINETY_DAYS
    listed = oauth.get(app.config["SAGE_API_BASE"] + "/sites", timeout=10)
    assert listed.status_code == 200 and listed.json() == EXPECTED_SITES
    renewed = oauth.refresh_token(app.config["SAGE_TOKEN_URL"], refresh_token=token["refresh_token"], timeout=10)
    assert renewed["refresh_token"] != token["refresh_token"]
    assert requests.get(app.config["SAGE_API_BASE"] + "/sites", timeout=10,
                        headers={"Authorization": "Bearer " + renewed["access_token"]}).json() == EXPECTED_SITES
    from panel.redis_conn import get_redis

    assert get_redis(app).get("demo_sageid:token_requests") == b"2"


def test_concurrent_refreshes_with_one_token_let_exactly_one_win_and_revoke_the_family(live_server):
    """Why the panel must refresh single-flight: a race looks like reuse, and reuse revokes everything."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    app = live_server.app
    first = connect(app.test_client(), app)
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": CLIENT_ID,
            "client_secret": app.config["SAGE_CLIENT_SECRET"]}

    def post(_):
        return requests.post(app.config["SAGE_TOKEN_URL"], data=form, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    assert sorted(r.status_code for r in responses) == [200] + [400] * 7
    assert {r.json()["error"] for r in responses if r.status_code == 400} == {"invalid_grant"}
    winner = next(r.json() for r in responses if r.status_code == 200)
    again = requests.post(app.config["SAGE_TOKEN_URL"], timeout=10, data=dict(form, refresh_token=winner["refresh_token"]))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
