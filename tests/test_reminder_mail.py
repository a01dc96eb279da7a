"""The reminder email (composition, headers) and its delivery through a real SMTP server (aiosmtpd)."""
from __future__ import annotations

import email
import html
import re
import socket
from datetime import datetime, time, timedelta, timezone
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from support import Session, connect_sage, free_port, make_app, run_jobs

from panel.extensions import db
from panel.models import AuditEvent, User
from panel.reminders import delivery
from panel.reminders import schedule as testmail
from panel.reminders.delivery import Outcome
from panel.reminders.mail import UnsafeHeader, compose_reminder, subject_for
from panel.reminders.unsubscribe import person_for
from panel.settings import outbox

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2027, 3, 20, 9, 30, tzinfo=timezone.utc)
BASE = "https://panel.example"


class Recorder:
    """An aiosmtpd handler that keeps what it received and refuses chosen recipients with a chosen reply."""

    def __init__(self):
        self.messages: list[tuple[tuple, list[str], bytes]] = []
        self.peers: set[tuple] = set()
        self.refuse: dict[str, str] = {}
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.peers.add(session.peer)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((session.peer, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def parsed(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(m[2], policy=policy.default) for m in self.messages]


@pytest.fixture
def smtp():
    handler = Recorder()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture
def mail_app(tmp_path, template_db, redis_server, smtp):
    """The app sending through the aiosmtpd server (plain SMTP on 127.0.0.1, short timeout)."""
    app = make_app(tmp_path, template_db, redis_server, MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port,
                   MAIL_USE_TLS=False, MAIL_TIMEOUT=5, PANEL_BASE_URL=BASE)
    from panel.redis_conn import get_redis

    get_redis(app).flushdb()
    return app


def people(app, *emails):
    return [User.query.filter_by(email=e).one() for e in emails]


# ---- subject --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("expires,subject", [
    (NOW + timedelta(days=12), "Sage token expires in 12 days — renew now"),
    (NOW + timedelta(days=1), "Sage token expires tomorrow — renew now"),
    (NOW + timedelta(hours=3), "Sage token expires today — renew now"),
    (NOW - timedelta(hours=1), "Sage token expired today — Sage sync has stopped"),
    (NOW - timedelta(days=1), "Sage token expired 1 day ago — Sage sync has stopped"),
    (NOW - timedelta(days=3), "Sage token expired 3 days ago — Sage sync has stopped"),
])
def test_subject_variants(expires, subject):
    assert subject_for(NOW, expires, "Europe/London") == subject


def test_subject_counts_the_company_s_local_days():
    now = datetime(2027, 3, 20, 12, 0, tzinfo=timezone.utc)  # Sydney: 21 March, 23:00
    expires = datetime(2027, 3, 20, 14, 0, tzinfo=timezone.utc)  # Sydney: 22 March, 01:00
    assert subject_for(now, expires, "Australia/Sydney") == "Sage token expires tomorrow — renew now"
    assert subject_for(now, expires, "Europe/London") == "Sage token expires today — renew now"


# ---- composition ----------------------------------------------------------------------------------------------

def test_the_email_has_both_parts_and_one_click_unsubscribe(mail_app):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=12, hours=2))
        ben, = people(mail_app, "ben@example.com")
        msg = compose_reminder(ben.company, ben, token, NOW, BASE)
        parsed = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
        assert parsed["Subject"] == "Sage token expires in 12 days — renew now"
        assert parsed["To"] == "Ben Hughes <ben@example.com>"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = parsed["List-Unsubscribe"]
        assert link.startswith(f"<{BASE}/unsubscribe/") and link.endswith(">")
        assert person_for(link[1:-1].rsplit("/", 1)[1]).email == "ben@example.com"
        text = parsed.get_body(("plain",)).get_content()
        page = parsed.get_body(("html",)).get_content()
        for part in (text, page):
            assert "Demo Ltd" in part
            assert "Thu 1 Apr 2027, 12:30 BST" in part  # expiry in the company's timezone
            assert "12 days, 2 hours" in part  # time left
            assert "Alice Admin" in part  # who last connected
            assert f"{BASE}/settings/sage" in part  # the button / link to renew
            assert "Why you are receiving this" in part and "How to stop" in part
            assert f"{BASE}/settings/notifications" in part and link[1:-1] in part
        assert 'href="https://panel.example/settings/sage"' in page


def test_expired_token_is_reworded(mail_app):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW - timedelta(days=3))
        ben, = people(mail_app, "ben@example.com")
        msg = compose_reminder(ben.company, ben, token, NOW, BASE)
        assert msg.subject == "Sage token expired 3 days ago — Sage sync has stopped"
        assert "Sage sync has stopped" in msg.body and "expired 3 days ago" in msg.body


def test_test_and_preview_are_labelled(mail_app):
    with mail_app.app_context():
        ben, = people(mail_app, "ben@example.com")
        preview = compose_reminder(ben.company, ben, None, NOW, BASE, test=True)
        assert preview.subject == "[Preview] Sage token expires in 28 days — renew now"
        assert "Sage is not connected yet for Demo Ltd" in preview.body and "nobody yet" in preview.body
        token = connect_sage(expires_at=NOW + timedelta(days=5))
        test = compose_reminder(ben.company, ben, token, NOW, BASE, test=True)
        assert test.subject == "[Test] Sage token expires in 5 days — renew now"
        assert test.body.startswith("TEST:")


def test_names_cannot_inject_headers(mail_app, smtp):
    with mail_app.app_context():
        ben, = people(mail_app, "ben@example.com")
        ben.name = "Ben\r\nBcc: x@evil.example"
        ben.company.name = "Evil Ltd\r\nBcc: y@evil.example\r\n\r\n<script>alert(1)</script>"
        msg = compose_reminder(ben.company, ben, None, NOW, BASE)
        raw = msg.as_bytes()
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert not [line for line in head.splitlines() if line.lower().startswith(b"bcc")], head
        parsed = email.message_from_bytes(raw, policy=policy.default)
        assert parsed["Bcc"] is None and parsed["To"].addresses[0].addr_spec == "ben@example.com"
        assert "&lt;script&gt;" in parsed.get_body(("html",)).get_content()  # the HTML part escapes names
        [result] = delivery.send_batch([msg])
        db.session.rollback()
    assert result.outcome is Outcome.SENT
    assert smtp.messages[0][1] == ["ben@example.com"]  # the server was asked to deliver to Ben only


@pytest.mark.parametrize("address", ["ben@example.com\r\nBcc: x@evil.example", "ben@example.com, x@evil.example",
                                     "Ben <ben@example.com>", "", "x" * 250 + "@example.com"])
def test_unsafe_addresses_are_refused(mail_app, address):
    with mail_app.app_context():
        ben, = people(mail_app, "ben@example.com")
        ben.email = address
        with pytest.raises(UnsafeHeader):
            compose_reminder(ben.company, ben, None, NOW, BASE)
        db.session.rollback()


def test_unsafe_base_url_is_refused(mail_app):
    with mail_app.app_context():
        ben, = people(mail_app, "ben@example.com")
        with pytest.raises(UnsafeHeader):
            compose_reminder(ben.company, ben, None, NOW, "https://panel.example\r\nBcc: x@evil.example")


# ---- delivery over SMTP ---------------------------------------------------------------------------------------

def messages_for(app, *emails):
    return [compose_reminder(u.company, u, None, NOW, BASE) for u in people(app, *emails)]


THREE = ("admin@example.com", "ben@example.com", "chloe@example.com")


def test_a_batch_goes_over_one_connection(mail_app, smtp):
    with mail_app.app_context():
        results = delivery.send_batch(messages_for(mail_app, *THREE))
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert [m[1] for m in smtp.messages] == [[e] for e in THREE]
    assert len({m[0] for m in smtp.messages}) == 1  # the same client port: one connection
    assert smtp.connections == 1


def test_a_sender_that_sends_nothing_opens_no_connection(mail_app, smtp):
    with mail_app.app_context():
        with delivery.open_sender():
            pass
        assert delivery.send_batch([]) == []
    assert smtp.connections == 0


def test_550_for_one_recipient_is_permanent_and_the_rest_still_go(mail_app, smtp):
    smtp.refuse["ben@example.com"] = "550 5.1.1 No such user here"
    with mail_app.app_context():
        results = delivery.send_batch(messages_for(mail_app, *THREE))
    assert [(r.recipient, r.outcome) for r in results] == [
        ("admin@example.com", Outcome.SENT), ("ben@example.com", Outcome.PERMANENT), ("chloe@example.com", Outcome.SENT)]
    assert results[1].code == 550 and "No such user" in results[1].reason
    assert [m[1] for m in smtp.messages] == [["admin@example.com"], ["chloe@example.com"]]
    assert smtp.connections == 1


def test_4xx_is_transient(mail_app, smtp):
    smtp.refuse["ben@example.com"] = "452 4.2.2 Mailbox full"
    with mail_app.app_context():
        results = delivery.send_batch(messages_for(mail_app, *THREE))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.TRANSIENT, Outcome.SENT]
    assert results[1].code == 452


def test_421_is_transient_and_the_rest_wait_for_a_retry(mail_app, smtp):
    smtp.refuse["ben@example.com"] = "421 4.3.2 Service shutting down"
    with mail_app.app_context():
        results = delivery.send_batch(messages_for(mail_app, *THREE))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.TRANSIENT, Outcome.TRANSIENT]
    assert results[1].code == 421 and "not attempted" in results[2].reason
    assert [m[1] for m in smtp.messages] == [["admin@example.com"]]


def test_no_server_is_transient_for_everyone(tmp_path, template_db, redis_server):
    app = make_app(tmp_path, template_db, redis_server, MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(),
                   MAIL_USE_TLS=False, MAIL_TIMEOUT=2)
    with app.app_context():
        results = delivery.send_batch(messages_for(app, *THREE))
    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 3
    assert "could not connect" in results[0].reason


def test_a_silent_server_times_out(tmp_path, template_db, redis_server):
    with socket.socket() as silent:  # accepts the TCP connection (backlog) but never says hello
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        app = make_app(tmp_path, template_db, redis_server, MAIL_SERVER="127.0.0.1",
                       MAIL_PORT=silent.getsockname()[1], MAIL_USE_TLS=False, MAIL_TIMEOUT=1)
        with app.app_context():
            started = datetime.now()
            results = delivery.send_batch(messages_for(app, "ben@example.com"))
    assert (datetime.now() - started).total_seconds() < 10
    assert results[0].outcome is Outcome.TRANSIENT and "timed out" in results[0].reason.lower()


def self_signed_context(tmp_path):
    """A server TLS context with a self-signed certificate for 127.0.0.1 (which no client should trust)."""
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(datetime.now(timezone.utc) - timedelta(1))
            .not_valid_after(datetime.now(timezone.utc) + timedelta(1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


@pytest.fixture
def tls_smtp(tmp_path):
    """An aiosmtpd server on 127.0.0.1 offering STARTTLS with the self-signed certificate (tmp_path/cert.pem)."""
    handler = Recorder()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port,
                            tls_context=self_signed_context(tmp_path))
    controller.start()
    yield handler
    controller.stop()


def send_over_starttls(tmp_path, template_db, redis_server, port, host="127.0.0.1", **config):
    """Send one reminder to Ben through ``host:port`` with STARTTLS; the per-recipient results."""
    app = make_app(tmp_path, template_db, redis_server, MAIL_SERVER=host, MAIL_PORT=port, MAIL_USE_TLS=True,
                   MAIL_TIMEOUT=5, **config)
    with app.app_context():
        return delivery.send_batch(messages_for(app, "ben@example.com"))


def test_starttls_verifies_the_certificate(tmp_path, template_db, redis_server, tls_smtp):
    results = send_over_starttls(tmp_path, template_db, redis_server, tls_smtp.port)
    assert results[0].outcome is Outcome.TRANSIENT and "CERTIFICATE_VERIFY_FAILED" in results[0].reason
    assert tls_smtp.messages == []  # nothing went over the unverified channel


def test_starttls_with_mail_ca_file_trusts_that_ca_and_still_checks_the_host_name(tmp_path, template_db,
                                                                                  redis_server, tls_smtp):
    ca = str(tmp_path / "cert.pem")
    sent = send_over_starttls(tmp_path, template_db, redis_server, tls_smtp.port, MAIL_CA_FILE=ca)
    # The certificate names 127.0.0.1 only: reaching the same server as "localhost" must fail verification.
    refused = send_over_starttls(tmp_path, template_db, redis_server, tls_smtp.port, "localhost", MAIL_CA_FILE=ca)
    assert sent[0].outcome is Outcome.SENT, sent[0].reason
    assert [m[1] for m in tls_smtp.messages] == [["ben@example.com"]]
    assert refused[0].outcome is Outcome.TRANSIENT and "CERTIFICATE_VERIFY_FAILED" in refused[0].reason


# ---- demo outbox ----------------------------------------------------------------------------------------------

def test_demo_outbox_writes_eml_files_and_lists_them(app, admin, user, other_admin):
    assert delivery.uses_outbox(app.config)
    with app.app_context():
        results = delivery.send_batch(messages_for(app, *THREE))
    assert all(r.sent and "demo outbox" in r.reason for r in results)
    files = sorted((Path(app.instance_path) / "outbox").glob("*.eml"))
    assert len(files) == 3
    first = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert 'href="/settings/sage/outbox"' in admin.get("/settings/sage").text
    page = admin.get("/settings/sage/outbox")
    assert page.status_code == 200 and page.text.count('class="card outbox-message"') == 3
    assert "Sage token expires in 28 days" in page.text and "chloe@example.com" in page.text
    download = admin.get(f"/settings/sage/outbox/{files[0].name}")
    assert download.status_code == 200 and download.mimetype == "message/rfc822"
    assert download.data == files[0].read_bytes()
    assert "No emails yet" in other_admin.get("/settings/sage/outbox").text  # another company's mail stays hidden
    assert other_admin.get(f"/settings/sage/outbox/{files[0].name}").status_code == 404
    assert admin.get("/settings/sage/outbox/..%2Fsecret_key").status_code == 404
    assert user.get("/settings/sage/outbox").status_code == 403


def test_no_outbox_with_a_mail_server(mail_app):
    admin = Session(mail_app.test_client(), "admin@example.com")
    assert admin.get("/settings/sage/outbox").status_code == 404
    assert "Demo outbox" not in admin.get("/settings/sage").text
    with mail_app.app_context():
        assert outbox.entries(1) == []


# ---- "Send test email" through an RQ worker (in this process) ---------------------------------------------------------------

def poll_url(fragment: str) -> str:
    import re

    return re.search(r'hx-get="([^"]+)" hx-trigger="every 1s"', fragment).group(1)


def test_test_email_is_sent_by_the_worker_and_reported(mail_app, smtp):
    # The subject counts calendar days in the company's timezone and the worker runs on the real clock, so the token
    # expires at local noon twelve days on: "12 days" whatever the time of day the suite runs at.
    london = ZoneInfo("Europe/London")
    today = datetime.now(london).date()
    expires_at = datetime.combine(today + timedelta(days=12), time(12), london).astimezone(timezone.utc)
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
    [msg] = smtp.parsed()
    expected = {"[Test] " + subject_for(datetime.now(timezone.utc), expires_at, "Europe/London"),
                "[Test] Sage token expires in 12 days — renew now"}  # the first differs only if midnight just passed
    assert msg["Subject"] in expected
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
    [msg] = smtp.parsed()
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
    from panel.redis_conn import get_redis

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
    from panel.redis_conn import get_redis

    assert get_redis(app).llen("rq:queue:panel") == 0


def test_polling_gives_up_when_no_worker_comes(app, admin, monkeypatch):
    url = poll_url(admin.post("/settings/notifications/test-email").text)
    assert "every 1s" in admin.get(url, htmx=True).text
    monkeypatch.setattr(testmail, "GIVE_UP", timedelta(0))
    final = admin.get(url, htmx=True).text
    assert "No background worker has picked up the test email yet" in final and "hx-trigger" not in final
