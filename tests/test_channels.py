"""Notification channels: added with inline validation (bad input changes nothing), stored encrypted and shown
masked, "Send test", and reminders through a local webhook standing in for Teams/Slack — one per channel per day,
nothing lost and nothing twice when the channel or Redis is down."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update
from support import connect_sage, make_app
from webhook_server import Webhook

from panel import clock
from panel.extensions import db
from panel.jobs import QueueUnavailable
from panel.models import AuditEvent, Company, User
from panel.models_alerts import NoticeDelivery, NotifyChannel
from panel.reminders import checks, notices, sweep
from panel.sage import check_state
from panel.sage.check import Kind, Outcome

NOON = datetime(2027, 3, 20, 12, 0, tzinfo=timezone.utc)  # London: 12:00 GMT, past the 08:00 send hour


@pytest.fixture
def hook():
    with Webhook() as server:
        yield server


@pytest.fixture
def app_private(tmp_path, template_db, redis_server):
    """The app, allowed to reach 127.0.0.1 (where the stand-in webhook listens)."""
    from panel.redis_conn import get_redis

    application = make_app(tmp_path, template_db, redis_server, PANEL_CHANNEL_ALLOW_PRIVATE=True,
                           PANEL_CHANNEL_TIMEOUT=2, PANEL_BASE_URL="https://crm.example.com")
    get_redis(application).flushdb()
    yield application
    clock.freeze(None)


def add_channel(session, url: str, label: str = ""):
    return session.post("/settings/sage/channels", data={"url": url, "label": label})


def channel_rows(app):
    with app.app_context():
        return db.session.scalars(select(NotifyChannel)).all()


@pytest.mark.parametrize("url, message", [
    ("", "Enter the webhook URL"),
    ("   ", "Enter the webhook URL"),
    ("not a url", "cannot contain spaces"),
    ("garbage", "not a URL Apprise can send to"),
    ("https://example.com/hook", "not a URL Apprise can send to"),
    ("syslog://", "would only appear on the server itself"),
    ("json://127.0.0.1:8080/hook", "private or local network"),
    ("json://10.1.2.3/hook", "private or local network"),
    ("mmost://[::1]:8065/token", "private or local network"),
    ("json://example.com/" + "a" * 2001, "longer than 2000"),
    ("json://example.com/\r\nX-Injected: 1", "cannot contain spaces or control characters"),
])
def test_bad_urls_get_a_message_and_change_nothing(app, admin, url, message):
    resp = add_channel(admin, url)
    assert resp.status_code == 200 and message in resp.text and 'aria-invalid="true"' in resp.text
    assert "HX-Trigger" not in resp.headers
    assert channel_rows(app) == []
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).filter_by(action="channel_added")) is None


def test_url_is_encrypted_masked_and_never_shown(app_private, hook):
    from support import Session

    admin = Session(app_private.test_client(), "admin@example.com")
    resp = add_channel(admin, hook.url("json"), "Ops <team>")
    assert resp.status_code == 200 and "Added Ops &lt;team&gt;" in resp.text
    (row,) = channel_rows(app_private)
    assert Webhook.SECRET not in row.url_enc and Webhook.SECRET not in row.url_masked
    page = admin.get("/settings/sage").text
    assert "Ops &lt;team&gt;" in page and row.url_masked in page and Webhook.SECRET not in page
    again = add_channel(admin, hook.url("json"))
    assert "already been added" in again.text and len(channel_rows(app_private)) == 1


def test_other_users_and_companies_cannot_touch_a_channel(app_private, hook):
    from support import Session

    admin = Session(app_private.test_client(), "admin@example.com")
    add_channel(admin, hook.url("json"))
    (row,) = channel_rows(app_private)
    user = Session(app_private.test_client(), "ben@example.com")
    other = Session(app_private.test_client(), "olga@other.example")
    assert user.post(f"/settings/sage/channels/{row.id}/remove").status_code == 403
    assert other.post(f"/settings/sage/channels/{row.id}/remove").status_code == 404
    assert other.post(f"/settings/sage/channels/{row.id}/test").status_code == 404
    assert user.post("/settings/sage/channels", data={"url": hook.url("json")}).status_code == 403
    assert len(channel_rows(app_private)) == 1 and hook.posts == []


def test_send_test_reaches_the_webhook_once(app_private, hook):
    from support import Session

    admin = Session(app_private.test_client(), "admin@example.com")
    add_channel(admin, hook.url("mmost"), "Slack-style")
    (row,) = channel_rows(app_private)
    resp = admin.post(f"/settings/sage/channels/{row.id}/test")
    assert "Sent a test message to Slack-style." in resp.text
    assert len(hook.posts) == 1 and "Test message from the Sage panel for Demo Ltd" in hook.texts()[0]
    hook.status = 500
    resp = admin.post(f"/settings/sage/channels/{row.id}/test")
    assert "Couldn&#39;t send to Slack-style" in resp.text and "error=500" in resp.text


def due_company(app, hook, *schemes) -> int:
    """Demo Ltd with a token in its reminder window at NOON, and a channel per scheme."""
    clock.freeze(NOON)
    with app.app_context():
        connect_sage(expires_at=NOON + timedelta(days=10))
        company = db.session.scalar(select(Company).filter_by(name="Demo Ltd"))
        for scheme in schemes:
            from panel.reminders import channels

            admin = company.users[0]
            assert channels.add(company, admin, hook.url(scheme), scheme).added == scheme
        return company.id


def test_reminders_reach_each_channel_once_a_day(app_private, hook):
    due_company(app_private, hook, "json", "mmost")
    with app_private.app_context():
        assert sweep.run(clock.now(), inline=True)["channel_sent"] == 2
        for minutes in (15, 30, 45):  # later sweeps the same day: nothing more
            clock.freeze(NOON + timedelta(minutes=minutes))
            sweep.run(clock.now(), inline=True)
    assert len(hook.posts) == 2
    assert {p["path"] for p in hook.posts} == {f"/hook/{Webhook.SECRET}", f"/hooks/{Webhook.SECRET}"}
    assert all("Sage token expires in 10 days" in t and "Login Now" in t for t in hook.texts())
    with app_private.app_context():  # the next day, at the send hour: one more each
        clock.freeze(NOON + timedelta(days=1))
        sweep.run(clock.now(), inline=True)
    assert len(hook.posts) == 4 and "expires in 9 days" in hook.texts()[-1]


def test_channel_down_then_back_nothing_lost_nothing_twice(app_private, hook):
    due_company(app_private, hook, "json")
    hook.status = 503  # the service is down
    with app_private.app_context():
        summary = sweep.run(clock.now(), inline=True)
        assert summary.get("channel_sent", 0) == 0
        (row,) = db.session.scalars(select(NoticeDelivery)).all()
        assert row.status == "claimed" and "503" in row.reason
        hook.status = 200
        clock.freeze(NOON + timedelta(minutes=5))  # before the lease: not retried yet
        sweep.run(clock.now(), inline=True)
        assert len(hook.posts) == 1
        clock.freeze(NOON + timedelta(minutes=11))  # after the lease: sent once
        sweep.run(clock.now(), inline=True)
        clock.freeze(NOON + timedelta(minutes=30))
        sweep.run(clock.now(), inline=True)
        assert db.session.scalar(select(NoticeDelivery.status)) == "sent"
    assert len(hook.posts) == 2  # one refused while down, one delivered


def test_redis_down_when_batches_are_queued_nothing_lost_nothing_twice(app_private, hook, tmp_path, template_db):
    due_company(app_private, hook, "json")
    with app_private.app_context():  # no email recipients: the channel's batch is the only one to queue
        db.session.execute(update(User).values(notify_sage_token=False))
        db.session.commit()
    uri = app_private.config["SQLALCHEMY_DATABASE_URI"]
    (tmp_path / "dead").mkdir()
    dead = make_app(tmp_path / "dead", template_db, f"unix://{tmp_path}/no-redis.sock", SQLALCHEMY_DATABASE_URI=uri,
                    PANEL_CHANNEL_ALLOW_PRIVATE=True)
    with dead.app_context():
        with pytest.raises(QueueUnavailable):
            sweep.run(clock.now())  # claims, then cannot queue anything: Redis is down
    with app_private.app_context():
        assert db.session.scalars(select(NoticeDelivery.status)).all() == ["claimed"]
        clock.freeze(NOON + timedelta(minutes=11))  # Redis is back; the lease has passed
        sweep.run(clock.now(), inline=True)
        sweep.run(clock.now(), inline=True)
    assert len(hook.posts) == 1


def test_a_sender_that_died_after_sending_never_sends_again(app_private, hook):
    due_company(app_private, hook, "json")
    with app_private.app_context():
        (row_id,) = sweep.channel_send.claim_due(clock.now())
        assert notices.mark(row_id, clock.now())  # marked, then the worker died before recording the answer
        clock.freeze(NOON + timedelta(minutes=11))
        sweep.run(clock.now(), inline=True)
        assert db.session.scalar(select(NoticeDelivery.status)) == "uncertain"
    assert hook.posts == []


def test_a_channel_that_does_not_answer_in_time_is_uncertain_not_resent(app_private, hook):
    due_company(app_private, hook, "json")
    hook.stall = 4  # longer than PANEL_CHANNEL_TIMEOUT (2 s)
    with app_private.app_context():
        sweep.run(clock.now(), inline=True)
        row = db.session.scalars(select(NoticeDelivery)).one()
        assert row.status == "uncertain" and "may have arrived" in row.reason
        hook.stall = 0
        clock.freeze(NOON + timedelta(minutes=30))
        sweep.run(clock.now(), inline=True)
    assert len(hook.posts) == 1


def test_connection_alerts_reach_channels_once_per_incident(app_private, hook):
    cid = due_company(app_private, hook, "json")
    with app_private.app_context():
        generation = db.session.get(Company, cid).id and 1
        check_state.record(cid, Outcome(Kind.BROKEN, "The Sage API refused the request (403): subscription lapsed."),
                           generation, clock.now())
        checks.send_alerts()
        checks.send_alerts()
        db.session.execute(update(NoticeDelivery).values(claimed_at=NOON))
        check_state.record(cid, Outcome(Kind.BROKEN, "still"), generation, clock.now() + timedelta(hours=1))
        checks.send_alerts()
        check_state.record(cid, Outcome(Kind.OK, "fine"), generation, clock.now() + timedelta(hours=2))
        checks.send_alerts()
        checks.send_alerts()
    texts = hook.texts()
    assert len(texts) == 2, texts
    assert "Sage connection broken — Demo Ltd" in texts[0] and "subscription lapsed" in texts[0]
    assert "Sage connection working again — Demo Ltd" in texts[1]


def test_at_most_ten_channels(app_private, hook):
    from support import Session

    admin = Session(app_private.test_client(), "admin@example.com")
    for n in range(10):
        assert "Added" in add_channel(admin, f"json://127.0.0.1:{hook.port}/hook/{n}").text
    resp = add_channel(admin, f"json://127.0.0.1:{hook.port}/hook/eleven")
    assert "at most 10 channels" in resp.text and len(channel_rows(app_private)) == 10


def test_a_private_address_is_refused_at_send_time_too(app_private, hook):
    due_company(app_private, hook, "json")  # added while private addresses were allowed
    app_private.config["PANEL_CHANNEL_ALLOW_PRIVATE"] = False
    with app_private.app_context():
        sweep.run(clock.now(), inline=True)
        row = db.session.scalars(select(NoticeDelivery)).one()
        assert row.status == "claimed" and "private or local network" in row.reason
    assert hook.posts == []


def test_reencrypt_moves_channel_urls_to_the_new_key(app_private, hook):
    from cryptography.fernet import Fernet

    from panel.reminders.channels import url_of

    due_company(app_private, hook, "json")
    old = app_private.config["PANEL_ENCRYPTION_KEYS"]
    app_private.config["PANEL_ENCRYPTION_KEYS"] = [Fernet.generate_key().decode()] + old
    out = app_private.test_cli_runner().invoke(args=["reencrypt-tokens"])
    assert out.exit_code == 0 and "(and 1 channel URL)" in out.output
    app_private.config["PANEL_ENCRYPTION_KEYS"] = app_private.config["PANEL_ENCRYPTION_KEYS"][:1]  # old key gone
    with app_private.app_context():
        (channel,) = db.session.scalars(select(NotifyChannel)).all()
        assert url_of(channel) == hook.url("json")
