"""Server-side sessions: sign-out, sign out everywhere, a password change and a deactivation end sessions at once —
copied cookies and cached widget polls included — and all of it works with Redis down."""
from __future__ import annotations

import re

import pytest
import requests
from oauth_flow import panel_sign_in
from support import PASSWORD, Session, make_app

from panel import accounts
from panel.extensions import db
from panel.models import User, UserSession

POLL = {"HX-Request": "true", "X-Panel-Poll": "1"}
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


def copy_of(http: requests.Session) -> requests.Session:
    """Another client holding the very same cookies (a stolen or copied session cookie)."""
    thief = requests.Session()
    thief.cookies.update(http.cookies)
    return thief


def csrf_of(http: requests.Session, base: str) -> str:
    return re.search(r'"X-CSRFToken": "([^"]+)"', http.get(f"{base}/settings/sage").text).group(1)


def signed_in(resp: requests.Response, base: str) -> bool:
    return resp.status_code == 200 and resp.url.startswith(f"{base}/settings/")


def person(app, email: str) -> User:
    with app.app_context():
        found = db.session.execute(db.select(User).filter_by(email=email)).scalar_one()
        db.session.expunge(found)
        return found


def test_copied_cookie_stops_working_after_sign_out(live_server):
    base = live_server.url
    http = panel_sign_in(base)
    csrf = csrf_of(http, base)
    thief = copy_of(http)
    assert signed_in(thief.get(f"{base}/settings/sage"), base)  # the copy works while the session lives
    assert thief.get(f"{base}/settings/sage/widget", headers=POLL).status_code == 200  # and is now cached

    out = http.post(f"{base}/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status_code == 302 and out.headers["Location"] == "/login"

    assert thief.get(f"{base}/settings/sage", allow_redirects=False).status_code == 302
    poll = thief.get(f"{base}/settings/sage/widget", headers=POLL)
    assert poll.status_code == 401 and poll.headers["HX-Redirect"].startswith("/login")
    save = thief.post(f"{base}/settings/sage/reminders/days", data={"value": "9"},
                      headers={"HX-Request": "true", "X-CSRFToken": csrf})
    assert save.status_code == 401
    with live_server.app.app_context():
        assert db.session.execute(db.select(User.id)).first() is not None
        assert db.session.execute(db.select(UserSession)).first() is None


def test_sign_out_everywhere_ends_every_session_at_once(live_server):
    base = live_server.url
    laptop, phone = panel_sign_in(base), panel_sign_in(base)
    assert laptop.get(f"{base}/settings/sage/widget", headers=POLL).status_code == 200  # cached for the laptop
    page = phone.get(f"{base}/settings/notifications")
    assert "Sign out everywhere" in page.text and "2 sessions" in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = phone.post(f"{base}/logout/everywhere", data={"csrf_token": csrf})
    assert done.url == f"{base}/login" and "signed out everywhere (2 sessions ended)" in done.text

    poll = laptop.get(f"{base}/settings/sage/widget", headers=POLL)
    assert poll.status_code == 401  # not answered from the cache
    assert laptop.get(f"{base}/settings/sage", allow_redirects=False).status_code == 302
    assert phone.get(f"{base}/settings/sage", allow_redirects=False).status_code == 302


def test_password_change_ends_every_session(live_server):
    base = live_server.url
    http = panel_sign_in(base)
    assert http.get(f"{base}/settings/sage/widget", headers=POLL).status_code == 200
    with live_server.app.app_context():
        accounts.set_password(db.session.get(User, person(live_server.app, "admin@example.com").id),
                              "a brand new passphrase")
    assert http.get(f"{base}/settings/sage/widget", headers=POLL).status_code == 401
    assert http.get(f"{base}/settings/sage", allow_redirects=False).status_code == 302
    with pytest.raises(AssertionError):
        panel_sign_in(base)  # the old password no longer works


def test_deactivation_ends_sessions_and_cached_polls_at_once(app, user):
    assert user.get("/settings/sage/widget", headers=POLL).status_code == 200  # cached now
    with app.app_context():
        accounts.deactivate(db.session.get(User, person(app, "ben@example.com").id))
    # At once: the deactivation raised the user's poll version (a trigger), so no cached answer is given.
    poll = user.get("/settings/sage/widget", headers=POLL)
    assert poll.status_code == 401
    with app.app_context():
        assert db.session.execute(db.select(UserSession).join(User).filter(User.email == "ben@example.com")).first() is None


def test_other_users_cached_polls_are_untouched(app, admin, user):
    admin.get("/settings/sage/widget", headers=POLL)
    user.get("/settings/sage/widget", headers=POLL)
    with app.app_context():
        accounts.deactivate(db.session.get(User, person(app, "ben@example.com").id))
    assert admin.get("/settings/sage/widget", headers=POLL).status_code == 200


def test_sign_in_again_after_sign_out_everywhere_works(client):
    first = Session(client, "admin@example.com")
    first.post("/logout/everywhere", htmx=False)
    assert Session(client, "admin@example.com").get("/settings/sage").status_code == 200


def test_expired_sessions_are_removed_from_the_database(app, admin):
    from datetime import timedelta

    from panel import clock

    clock.freeze(clock.now() + timedelta(minutes=31))
    assert admin.client.get("/settings/sage").status_code == 302
    with app.app_context():
        assert db.session.execute(db.select(UserSession)).first() is None


@pytest.fixture
def down(tmp_path, template_db):
    """The app with REDIS_URL pointing at a dead address."""
    return make_app(tmp_path, template_db, DEAD_REDIS)


def test_sessions_end_with_redis_down(down):
    laptop = Session(down.test_client(), "admin@example.com")
    phone = Session(down.test_client(), "admin@example.com")
    thief = down.test_client()
    thief.set_cookie("panel_session", laptop.client.get_cookie("panel_session").value)
    assert laptop.get("/settings/sage/widget", headers=POLL).status_code == 200
    assert thief.get("/settings/sage/widget", headers=POLL).status_code == 200

    assert laptop.post("/logout", htmx=False).status_code == 302
    assert thief.get("/settings/sage/widget", headers=POLL).status_code == 401
    assert thief.get("/settings/sage").status_code == 302
    assert phone.get("/settings/sage").status_code == 200  # only the one session ended

    assert phone.post("/logout/everywhere", htmx=False).status_code == 302
    assert phone.get("/settings/sage/widget", headers=POLL).status_code == 401
    assert Session(down.test_client(), "admin@example.com").get("/settings/sage").status_code == 200


def test_end_sessions_command(app, admin, user):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["end-sessions", "--email", "ben@example.com"])
    assert result.exit_code == 0 and "Ended 1 session of ben@example.com" in result.output
    assert user.get("/settings/sage").status_code == 302
    assert admin.get("/settings/sage").status_code == 200
    result = runner.invoke(args=["end-sessions", "--all"])
    assert result.exit_code == 0 and "Ended 1 session" in result.output
    assert admin.get("/settings/sage").status_code == 302


def test_password_and_deactivation_commands(app, user):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["set-password", "--email", "ben@example.com"],
                           input="another good passphrase\nanother good passphrase\n")
    assert result.exit_code == 0, result.output
    assert "Password changed for ben@example.com; 1 session ended" in result.output
    assert user.get("/settings/sage").status_code == 302
    Session(app.test_client(), "ben@example.com", "another good passphrase")
    result = runner.invoke(args=["deactivate-user", "--email", "ben@example.com"])
    assert result.exit_code == 0 and "Deactivated ben@example.com; 1 session ended" in result.output
    with pytest.raises(AssertionError):
        Session(app.test_client(), "ben@example.com", "another good passphrase")
    short = runner.invoke(args=["set-password", "--email", "ben@example.com"], input="short\nshort\n")
    assert short.exit_code != 0 and "at least 8 characters" in short.output
    assert PASSWORD  # the seeded password is untouched for everyone else


@pytest.fixture
def silent_redis():
    """A TCP listener that accepts connections and never answers (a frozen Redis, a partition)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


def test_a_hung_redis_delays_polls_and_sign_out_by_a_quarter_second_at_most(tmp_path, template_db, silent_redis):
    import time

    app = make_app(tmp_path, template_db, silent_redis)
    admin = Session(app.test_client(), "admin@example.com")
    started = time.monotonic()
    for _ in range(5):  # polls never ask Redis (conditional polls read the poll versions from the database)
        assert admin.get("/settings/sage/widget", headers=POLL).status_code == 200
    assert admin.post("/logout", htmx=False).status_code == 302
    assert time.monotonic() - started < 3  # not the main Redis client's 5 s per command
    assert admin.get("/settings/sage/widget", headers=POLL).status_code == 401
