"""How the app answers htmx requests: 401 + HX-Redirect, error fragments."""
from __future__ import annotations

import pytest


def test_unauthenticated_htmx_request_gets_401_and_hx_redirect(client):
    resp = client.get("/settings/sage", headers={"HX-Request": "true",
                                                  "HX-Current-URL": "http://localhost/settings/sage"})
    assert resp.status_code == 401
    assert resp.headers["HX-Redirect"] == "/login?next=/settings/sage"
    assert "<form" not in resp.text  # never a sign-in form to swap into a fragment


def test_unauthenticated_page_request_redirects_with_next(client):
    resp = client.get("/settings/sage")
    assert resp.status_code == 302 and resp.headers["Location"] == "/login?next=/settings/sage"


def test_htmx_404_is_a_fragment(admin):
    resp = admin.get("/no-such-thing", htmx=True)
    assert resp.status_code == 404
    assert "<html" not in resp.text and 'class="error-message"' in resp.text
    assert "HX-Request" in resp.headers["Vary"]


def test_plain_404_is_a_full_page(admin):
    resp = admin.client.get("/no-such-thing")
    assert resp.status_code == 404 and "<html" in resp.text and "Not found" in resp.text


@pytest.fixture
def boom_route(app):
    def boom():
        raise RuntimeError("kaboom")

    app.add_url_rule("/_test/boom", "boom", boom)


def test_500_answers_with_a_page_and_rolls_back(boom_route, admin):
    resp = admin.client.get("/_test/boom")
    assert resp.status_code == 500 and "Something went wrong" in resp.text and "kaboom" not in resp.text
    frag = admin.get("/_test/boom", htmx=True)
    assert frag.status_code == 500 and "<html" not in frag.text
