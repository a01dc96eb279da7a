"""One-click unsubscribe (RFC 8058): signed links; GET only asks; POST works without cookies; forgeries change nothing."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from support import Session, csrf_from

from panel.models import AuditEvent, User
from panel.reminders import unsubscribe
from panel.reminders.mail import compose_reminder

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def token_for(app, email: str) -> str:
    with app.test_request_context():
        return unsubscribe.make_token(User.query.filter_by(email=email).one())


def notify(app, email: str) -> bool:
    with app.app_context():
        return User.query.filter_by(email=email).one().notify_sage_token


def unsubscribed_events(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [(e.actor_name, e.detail) for e in AuditEvent.query.filter_by(action="unsubscribed")]


def test_get_only_asks(app, client):
    token = token_for(app, "chloe@example.com")
    resp = client.get(f"/unsubscribe/{token}")
    assert resp.status_code == 200
    assert "chloe@example.com" in resp.text and ">Unsubscribe</button>" in resp.text
    assert f'action="/unsubscribe/{token}"' in resp.text
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert notify(app, "chloe@example.com") is True and unsubscribed_events(app) == []


def test_one_click_post_without_cookies_or_csrf(app):
    token = token_for(app, "chloe@example.com")
    fresh = app.test_client(use_cookies=False)  # a mail provider's server: no session, no CSRF token
    resp = fresh.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert resp.status_code == 200 and "will no longer get Sage token reminders" in resp.text
    assert notify(app, "chloe@example.com") is False
    assert unsubscribed_events(app) == [("Chloe Patel", "Chloe Patel: on → off (one-click unsubscribe link)")]
    again = fresh.post(f"/unsubscribe/{token}", data=ONE_CLICK)  # a second click is harmless
    assert again.status_code == 200 and "You're already unsubscribed" in again.text
    assert len(unsubscribed_events(app)) == 1


def test_the_link_in_the_email_works(app):
    with app.test_request_context():
        chloe = User.query.filter_by(email="chloe@example.com").one()
        msg = compose_reminder(chloe.company, chloe, None, datetime.now(timezone.utc), "https://panel.example")
        url = msg.message["List-Unsubscribe"].strip("<>")
    path = url.removeprefix("https://panel.example")
    assert app.test_client(use_cookies=False).post(path, data=ONE_CLICK).status_code == 200
    assert notify(app, "chloe@example.com") is False


def test_get_when_already_unsubscribed_says_so_and_offers_a_sign_in(app):
    token = token_for(app, "chloe@example.com")
    fresh = app.test_client(use_cookies=False)
    fresh.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    page = fresh.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "You're already unsubscribed" in page.text
    assert ">Unsubscribe</button>" not in page.text  # nothing left to ask
    assert 'href="/login?next=/settings/notifications">Sign in</a> to turn reminders back on' in page.text
    assert "Turn reminders back on</button>" not in page.text  # a button only for the person, signed in


def test_signed_in_the_person_can_turn_reminders_back_on(app):
    token = token_for(app, "chloe@example.com")
    chloe = Session(app.test_client(), "chloe@example.com")
    done = chloe.client.post(f"/unsubscribe/{token}", data={})  # the page's own button, in her browser
    assert "You're unsubscribed" in done.text and "Turn reminders back on</button>" in done.text
    assert notify(app, "chloe@example.com") is False
    page = chloe.get(f"/unsubscribe/{token}").text
    assert "You're already unsubscribed" in page
    form = re.search(r'<form method="post" action="([^"]+)" data-testid="resubscribe">(.*?)</form>', page, re.S)
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
    assert fields["csrf_token"] == csrf_from(page) and fields["on"] == "1"
    back = chloe.client.post(form.group(1), data=fields)  # a plain form POST: no htmx
    assert back.status_code == 302 and back.headers["Location"].endswith("/settings/notifications")
    assert notify(app, "chloe@example.com") is True
    # Without the CSRF token the same form changes nothing.
    chloe.client.post(f"/unsubscribe/{token}", data={})
    assert chloe.client.post(form.group(1), data={"on": "1", "fragment": "own"}).status_code == 400
    assert notify(app, "chloe@example.com") is False


def test_signed_in_as_someone_else_gets_no_button(app):
    token = token_for(app, "chloe@example.com")
    app.test_client(use_cookies=False).post(f"/unsubscribe/{token}", data=ONE_CLICK)
    ben = Session(app.test_client(), "ben@example.com")
    page = ben.get(f"/unsubscribe/{token}").text
    assert "You're already unsubscribed" in page and "Turn reminders back on</button>" not in page
    assert "Sign in</a> to turn reminders back on" in page


class OldSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - (unsubscribe.MAX_AGE_DAYS + 1) * 86400


def forged_tokens(app) -> dict[str, str]:
    good = token_for(app, "chloe@example.com")
    key = app.config["SECRET_KEY"]
    with app.app_context():
        chloe = User.query.filter_by(email="chloe@example.com").one()
        olga = User.query.filter_by(email="olga@other.example").one()
        ids = {"u": chloe.id, "c": chloe.company_id}
        return {
            # Not the very last character: its low bits are base64 padding, so some replacements decode the same.
            "signature character changed": good[:-5] + ("A" if good[-5] != "A" else "B") + good[-4:],
            "payload swapped": URLSafeTimedSerializer("x", salt="y").dumps({"u": olga.id, "c": olga.company_id})
                               .split(".")[0] + "." + good.split(".", 1)[1],
            "wrong key": URLSafeTimedSerializer("not-the-key", salt=unsubscribe.SALT).dumps(ids),
            "wrong salt": URLSafeTimedSerializer(key, salt="something-else").dumps(ids),
            "wrong company": URLSafeTimedSerializer(key, salt=unsubscribe.SALT).dumps({"u": chloe.id, "c": olga.company_id}),
            "nobody": URLSafeTimedSerializer(key, salt=unsubscribe.SALT).dumps({"u": 999999, "c": chloe.company_id}),
            "not ids": URLSafeTimedSerializer(key, salt=unsubscribe.SALT).dumps({"u": "1", "c": [1]}),
            "too old": URLSafeTimedSerializer(key, salt=unsubscribe.SALT, signer=OldSigner).dumps(ids),
            "garbage": "not-a-token",
            "huge": "a" * 600,
        }


@pytest.mark.parametrize("case", ["signature character changed", "payload swapped", "wrong key", "wrong salt",
                                  "wrong company", "nobody", "not ids", "too old", "garbage", "huge"])
def test_forged_tokens_are_400_and_change_nothing(app, case):
    token = forged_tokens(app)[case]
    fresh = app.test_client(use_cookies=False)
    for resp in (fresh.get(f"/unsubscribe/{token}"), fresh.post(f"/unsubscribe/{token}", data=ONE_CLICK)):
        assert resp.status_code == 400
        assert "This unsubscribe link is not valid" in resp.text and "Nothing was changed" in resp.text
    assert notify(app, "chloe@example.com") is True
    with app.app_context():
        assert all(u.notify_sage_token == was for u, was in
                   zip(User.query.order_by(User.id), [True, False, True, True, True]))
    assert unsubscribed_events(app) == []


def test_good_token_still_works_next_to_the_forgeries(app):
    # Proves the forgery test above is not passing because every token fails.
    token = token_for(app, "chloe@example.com")
    assert app.test_client(use_cookies=False).post(f"/unsubscribe/{token}").status_code == 200
    assert notify(app, "chloe@example.com") is False
