"""Security headers, CSRF, and the htmx configuration the pages carry."""
from __future__ import annotations

import json
import re

import pytest
from support import make_app


@pytest.mark.parametrize("path", ["/login", "/static/panel.css", "/no-such-page", "/settings/sage"])
def test_security_headers_on_every_response(client, path):
    resp = client.get(path)
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] in {"same-origin", "no-referrer"}
    assert "Strict-Transport-Security" not in resp.headers  # development is plain http
    if resp.mimetype == "text/html":
        assert resp.headers["Cache-Control"] == "no-store"  # per-user pages: never cached


def test_hsts_in_production(tmp_path, template_db, redis_server):
    from cryptography.fernet import Fernet
    from support import base_env

    env = base_env(PANEL_ENV="production", SAGE_CLIENT_ID="id", SAGE_CLIENT_SECRET="secret", MAIL_SERVER="smtp",
                   PANEL_BASE_URL="https://crm.example.com", PANEL_ALLOW_SQLITE="1", REDIS_URL=redis_server,
                   PANEL_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    app = make_app(tmp_path, template_db, redis_server, ENV_VARS=env)
    resp = app.test_client().get("/login", base_url="https://crm.example.com")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in resp.headers["Set-Cookie"]


def test_pages_have_no_inline_script_or_style(admin):
    html = admin.client.get("/settings/sage").text + admin.client.get("/login").text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> would be blocked by the CSP"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handlers would be blocked by the CSP"


def test_htmx_config_meta(admin):
    html = admin.client.get("/settings/sage").text
    m = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", html)
    cfg = json.loads(m.group(1))
    assert cfg["includeIndicatorStyles"] is False and cfg["allowEval"] is False
    assert cfg["historyCacheSize"] == 0
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_vendored_htmx_is_2_0():
    from pathlib import Path

    js = (Path(__file__).parent.parent / "static" / "htmx.min.js").read_text()
    assert 'version:"2.0.' in js


def test_post_without_csrf_token_is_refused(admin):
    resp = admin.client.post("/logout")
    assert resp.status_code == 400 and "expired" in resp.text
    assert admin.client.get("/settings/sage").status_code == 200  # still signed in: nothing changed


def test_htmx_post_with_bad_csrf_token_asks_for_a_refresh(admin):
    resp = admin.client.post("/logout", headers={"HX-Request": "true", "X-CSRFToken": "forged"})
    assert resp.status_code == 400
    assert resp.headers["HX-Refresh"] == "true"


def test_csrf_token_outlives_an_hour(admin):
    from datetime import timedelta

    from panel import clock

    # The token is tied to the session, not to a one-hour clock (WTF_CSRF_TIME_LIMIT=None).
    assert admin.client.application.config["WTF_CSRF_TIME_LIMIT"] is None
    clock.freeze(clock.now() + timedelta(minutes=25))
    assert admin.post("/logout").status_code == 302


def test_login_form_without_csrf_is_refused(client):
    resp = client.post("/login", data={"email": "admin@example.com", "password": "x"})
    assert resp.status_code == 400


def test_security_md_names_only_tests_that_exist():
    """docs/SECURITY.md cites tests as proof; a renamed or deleted test must not leave a promise unproven."""
    from pathlib import Path

    root = Path(__file__).resolve().parent
    doc = (root.parent / "docs" / "SECURITY.md").read_text()
    cited, missing, current = 0, [], None
    for text in re.findall(r"`([^`]+)`", doc):
        match = re.fullmatch(r"((?:browser/)?test_\w+\.py)?(?:::(test_\w+))?", text)
        if not match or not any(match.groups()):
            continue
        file, name = match.groups()
        current = file or current
        if not (root / current).exists():
            missing.append(current)
        elif name and not re.search(rf"^(async )?def {name}\(", (root / current).read_text(), re.M):
            missing.append(f"{current}::{name}")
        cited += 1
    assert cited > 50 and missing == []
