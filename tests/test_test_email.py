"""'Send test email': queued, sent by an RQ worker (in this process) through aiosmtpd, and reported; and what the
test email says — never that a reminder is due today when none is."""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone

from mail_fixtures import BASE, NOW, people, send_and_receive
from mail_fixtures import mail_app, smtp  # noqa: F401  (fixtures)
from support import Session, connect_sage, run_jobs
from wire import strict

from panel.extensions import db
from panel.models import AuditEvent, User
from panel.redis_conn import get_redis
from panel.reminders import schedule as testmail
from panel.reminders.mail import compose_reminder


def plain_text(raw: bytes) -> str:
    return strict(raw).get_body(("plain",)).get_content().replace("\r\n", "\n")


def trial_for(email: str, token):
    person, = people(email)
    return compose_reminder(person.company, person, token, NOW, BASE, test=True)


# ---- what the test email says ------------------------------------------------------------------------------------

def test_outside_the_window_it_says_no_reminder_is_due_yet(mail_app, smtp):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=60))
        got = send_and_receive(smtp, trial_for("admin@example.com", token))
    text = plain_text(got.raw)
    assert got.parsed()["Subject"] == "[Test] Sage token expires in 60 days — renew now"
    assert text.startswith("TEST: you asked for this from the panel. No reminder is due yet: reminders like this "
                           "one start Wed 21 Apr 2027, 10:30 BST, 28 days before the token expires, and then go out "
                           "every day at 08:00.")
    page = strict(got.raw).get_body(("html",)).get_content()
    for part in (text, page):
        assert "exactly like this" not in part and "Today's reminder" not in part


def test_inside_the_window_it_says_reminders_are_going_out(mail_app, smtp):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=5))
        text = plain_text(send_and_receive(smtp, trial_for("admin@example.com", token)).raw)
    assert text.startswith("TEST: you asked for this from the panel. Reminders like this one go out every day at "
                           "08:00 until someone renews the token.\n")
    assert "switched off" not in text.split("\n\n")[0]


def test_it_tells_someone_whose_reminders_are_off(mail_app, smtp):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=5))
        text = plain_text(send_and_receive(smtp, trial_for("ben@example.com", token)).raw)  # Ben: off
    assert "Your own reminders are switched off, so you will not get them" in text
    assert "Why you are receiving this: you asked for a test email." in text


def test_a_test_email_has_its_own_message_id(mail_app, smtp):
    """A provider that drops a repeated Message-ID must never drop the real reminder because of a test."""
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=5))
        alice, = people("admin@example.com")
        real = compose_reminder(alice.company, alice, token, NOW, BASE)
        tests = [trial_for("admin@example.com", token) for _ in range(2)]
    ids = {m.message["Message-ID"] for m in [real, *tests]}
    assert len(ids) == 3 and real.message["Message-ID"].startswith("<sage-reminder.")


# ---- "Send test email" through an RQ worker -----------------------------------------------------------------------

# ---- "Send test email" through an RQ worker (in this process) ---------------------------------------------------------------

def poll_url(fragment: str) -> str:
    return re.search(r'hx-get="([^"]+)" hx-trigger="every 1s"', fragment).group(1)


def test_test_email_is_sent_by_the_worker_and_reported(mail_app, smtp):
    # The worker runs on the real clock: twelve days and an hour left reads "12 days" for the next hour.
    expires_at = datetime.now(timezone.utc) + timedelta(days=12, hours=1)
    with mail_app.app_context():
        connect_sage(expires_at=expires_at)
        db.session.commit()
    admin = Session(mail_app.test_client(), "admin@example.com")
    started = admin.post("/settings/notifications/test-email")
    assert started.status_code == 200 and "Sending a test email to admin@example.com" in started.text
    url = poll_url(started.text)
    assert "every 1s" in admin.get(url, htmx=True).text  # queued: keep polling
    run_jobs(mail_app)
    final = admin.get(url, htmx=True)
    assert final.status_code == 200 and "Sent to admin@example.com." in final.text
    assert "hx-trigger" not in final.text  # the final fragment stops the polling
    [msg] = smtp.messages
    assert msg["Subject"] == "[Test] Sage token expires in 12 days — renew now"
    assert msg["To"].addresses[0].addr_spec == "admin@example.com"
    assert msg["List-Unsubscribe"].startswith(f"<{BASE}/unsubscribe/")
    with mail_app.app_context():
        event = AuditEvent.query.filter_by(action="test_email").one()
        assert (event.actor_name, event.detail) == ("Alice Admin", "To admin@example.com: sent")
    # Somebody else cannot read that job's status; made-up ids are 404 too.
    ben = Session(mail_app.test_client(), "ben@example.com")
    assert ben.get(url, htmx=True).status_code == 404
    assert admin.get("/settings/notifications/test-email/" + "0" * 32, htmx=True).status_code == 404
    assert admin.get("/settings/notifications/test-email/not-a-job", htmx=True).status_code == 404


def test_test_email_without_sage_is_a_labelled_preview(mail_app, smtp):
    ben = Session(mail_app.test_client(), "ben@example.com")
    url = poll_url(ben.post("/settings/notifications/test-email").text)
    run_jobs(mail_app)
    final = ben.get(url, htmx=True).text
    assert "Sent to ben@example.com — a preview, as Sage is not connected yet." in final
    [msg] = smtp.messages
    assert msg["Subject"].startswith("[Preview] ") and "Sage is not connected yet" in msg.get_body(("plain",)).get_content()


def test_test_email_reports_why_it_could_not_send(mail_app, smtp):
    admin = Session(mail_app.test_client(), "admin@example.com")
    url = poll_url(admin.post("/settings/notifications/test-email").text)
    smtp.refuse["admin@example.com"] = "550 5.7.1 Relaying denied"
    run_jobs(mail_app)
    final = html.unescape(admin.get(url, htmx=True).text)
    assert "Couldn't send: 550 5.7.1 Relaying denied." in final and "hx-trigger" not in final


def test_test_email_with_redis_down_says_so(app, admin):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("panel_redis", None)
    resp = admin.post("/settings/notifications/test-email")
    assert resp.status_code == 200
    assert "Background jobs are unavailable right now, so the test email could not be queued" in resp.text
    assert "hx-trigger" not in resp.text


def test_a_second_test_email_within_a_minute_is_refused_with_the_wait(app, admin, user):
    first = admin.post("/settings/notifications/test-email")
    assert "Sending a test email to admin@example.com" in first.text
    again = html.unescape(admin.post("/settings/notifications/test-email").text)
    assert "A test email was sent to admin@example.com moments ago. You can send another in" in again
    assert re.search(r"another in (60|59) seconds\.", again) and "hx-trigger" not in again
    assert get_redis(app).llen("rq:queue:panel") == 1  # the second click queued nothing
    # The wait is per person: somebody else can still send theirs.
    assert "Sending a test email to ben@example.com" in user.post("/settings/notifications/test-email").text
    assert get_redis(app).llen("rq:queue:panel") == 2
    # Once the minute is over, the button works again.
    get_redis(app).delete(testmail.cooldown_key(admin_id(app)))
    assert "Sending a test email" in admin.post("/settings/notifications/test-email").text
    assert get_redis(app).llen("rq:queue:panel") == 3


def admin_id(app) -> int:
    with app.app_context():
        return User.query.filter_by(email="admin@example.com").one().id


def test_test_email_needs_csrf(app, admin):
    resp = admin.client.post("/settings/notifications/test-email", headers={"HX-Request": "true"})
    assert resp.status_code == 400
    assert get_redis(app).llen("rq:queue:panel") == 0


def test_polling_gives_up_when_no_worker_comes(app, admin, monkeypatch):
    url = poll_url(admin.post("/settings/notifications/test-email").text)
    assert "every 1s" in admin.get(url, htmx=True).text
    monkeypatch.setattr(testmail, "GIVE_UP", timedelta(0))
    final = admin.get(url, htmx=True).text
    assert "No background worker has picked up the test email yet" in final and "hx-trigger" not in final
