"""Sign-in, sign-out, safe redirects, fresh sessions and timeouts (throttling: test_throttle.py)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from support import PASSWORD, Session, csrf_from

from panel import clock


def post_login(client, email, password, **extra):
    token = csrf_from(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token, **extra})


def test_sign_in_lands_on_sage_settings(client):
    resp = post_login(client, "Admin@Example.com ", PASSWORD)
    assert resp.status_code == 302 and resp.headers["Location"] == "/settings/sage"
    page = client.get("/settings/sage")
    assert page.status_code == 200 and "Alice Admin" in page.text and "Demo Ltd" in page.text


def test_wrong_password_is_refused_with_a_clear_message(client):
    resp = post_login(client, "admin@example.com", "wrong password")
    assert resp.status_code == 401
    assert "Email or password is incorrect." in resp.text
    assert client.get("/settings/sage").status_code == 302


def test_empty_form_asks_for_both_fields(client):
    resp = post_login(client, "", "")
    assert resp.status_code == 400 and "Enter your email address and password." in resp.text


def test_inactive_user_cannot_sign_in(app, client):
    from panel.extensions import db
    from panel.models import User

    with app.app_context():
        User.query.filter_by(email="ben@example.com").one().active = False
        db.session.commit()
    assert post_login(client, "ben@example.com", PASSWORD).status_code == 401


# Throttling: tests/test_throttle.py.


@pytest.mark.parametrize("target, expected", [
    ("/settings/sage?x=1", "/settings/sage?x=1"),
    ("https://evil.example/steal", "/settings/sage"),
    ("//evil.example/steal", "/settings/sage"),
    ("/\\evil.example", "/settings/sage"),
    ("\\\\evil.example", "/settings/sage"),
    ("javascript:alert(1)", "/settings/sage"),
    ("http://localhost/settings/sage", "/settings/sage"),
    ("/settings/sage\r\nSet-Cookie: x=1", "/settings/sage"),
])
def test_next_accepts_same_site_paths_only(client, target, expected):
    resp = post_login(client, "admin@example.com", PASSWORD, next=target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == expected


def test_sign_in_starts_a_fresh_session(client):
    anon_token = csrf_from(client.get("/login").text)
    before = client.get_cookie("panel_session").value
    client.post("/login", data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": anon_token})
    after = client.get_cookie("panel_session").value
    assert after != before
    assert csrf_from(client.get("/settings/sage").text) != anon_token


def test_session_cookie_flags(client):
    post_login(client, "admin@example.com", PASSWORD)
    cookie = client.get_cookie("panel_session")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_sign_out_needs_post_and_ends_the_session(admin):
    assert admin.client.get("/logout").status_code == 405
    resp = admin.post("/logout", htmx=False)
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert admin.client.get("/settings/sage").status_code == 302


def test_idle_timeout_signs_out(admin):
    clock.freeze(clock.now() + timedelta(minutes=31))
    resp = admin.client.get("/settings/sage")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    assert "Your session expired" in admin.client.get("/login").text


def test_activity_keeps_the_session_alive(admin):
    start = clock.now()
    for minutes in (20, 40, 60):
        clock.freeze(start + timedelta(minutes=minutes))
        assert admin.client.get("/settings/sage").status_code == 200


def test_absolute_timeout_signs_out_even_when_active(admin):
    start = clock.now()
    for hours in range(1, 13):
        clock.freeze(start + timedelta(hours=hours, minutes=-5))
        admin.client.get("/settings/sage")
    clock.freeze(start + timedelta(hours=12, minutes=1))
    assert admin.client.get("/settings/sage").status_code == 302


@pytest.fixture
def poll_route(app):
    from flask_login import login_required

    from panel.sessions import poll_endpoint

    @login_required
    @poll_endpoint
    def _poll():
        return "fresh"

    app.add_url_rule("/_test/poll", "test_poll", _poll)


def test_polling_does_not_extend_the_session(poll_route, admin):
    start = clock.now()
    for minutes in (10, 20, 29):
        clock.freeze(start + timedelta(minutes=minutes))
        assert admin.get("/_test/poll", htmx=True).status_code == 200
    clock.freeze(start + timedelta(minutes=31))
    resp = admin.get("/_test/poll", htmx=True)
    assert resp.status_code == 401 and resp.headers["HX-Redirect"].startswith("/login")


def test_signed_in_user_visiting_login_goes_to_settings(admin):
    resp = admin.client.get("/login")
    assert resp.status_code == 302 and resp.headers["Location"] == "/settings/sage"


def test_session_class_helper_signs_in(client):
    # Guards the fixture itself: a wrong password must not yield a session.
    with pytest.raises(AssertionError):
        Session(client, "admin@example.com", "wrong")


def test_passwords_are_checked_exactly_as_typed_and_may_be_long(app, client):
    """ASVS 6.2.8/6.2.9: no trimming, no case folding, no truncation; 64+ characters (up to 1024) work."""
    from panel import accounts
    from panel.extensions import db
    from panel.models import User

    long_one = "Ünïcödé and spaces " * 10  # 190 characters
    with app.app_context():
        accounts.set_password(db.session.execute(db.select(User).filter_by(email="ben@example.com")).scalar_one(),
                              long_one)
    for near_miss in (long_one.strip(), long_one.upper(), long_one[:72], long_one + " "):
        assert post_login(client, "ben@example.com", near_miss).status_code == 401
    assert post_login(app.test_client(), "ben@example.com", long_one).status_code == 302
