"""Delivery over SMTP (aiosmtpd): one connection per batch, an outcome per recipient, timeouts, verified TLS."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import pytest
from mail_fixtures import THREE, messages_for
from mail_fixtures import mail_app, smtp  # noqa: F401  (fixtures)
from smtp_server import SMTPServer
from support import free_port, make_app

from panel.reminders import delivery
from panel.reminders.delivery import Outcome


def test_a_batch_goes_over_one_connection(mail_app, smtp):
    with mail_app.app_context():
        results = delivery.send_batch(messages_for(*THREE))
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert [m.rcpt_tos for m in smtp.received] == [[e] for e in THREE]
    assert len({m.peer for m in smtp.received}) == 1  # the same client port: one connection
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
        results = delivery.send_batch(messages_for(*THREE))
    assert [(r.recipient, r.outcome) for r in results] == [
        ("admin@example.com", Outcome.SENT), ("ben@example.com", Outcome.PERMANENT), ("chloe@example.com", Outcome.SENT)]
    assert results[1].code == 550 and "No such user" in results[1].reason
    assert [m.rcpt_tos for m in smtp.received] == [["admin@example.com"], ["chloe@example.com"]]
    assert smtp.connections == 1


def test_4xx_is_transient(mail_app, smtp):
    smtp.refuse["ben@example.com"] = "452 4.2.2 Mailbox full"
    with mail_app.app_context():
        results = delivery.send_batch(messages_for(*THREE))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.TRANSIENT, Outcome.SENT]
    assert results[1].code == 452


def test_421_is_transient_and_the_rest_wait_for_a_retry(mail_app, smtp):
    smtp.refuse["ben@example.com"] = "421 4.3.2 Service shutting down"
    with mail_app.app_context():
        results = delivery.send_batch(messages_for(*THREE))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.TRANSIENT, Outcome.TRANSIENT]
    assert results[1].code == 421 and "not attempted" in results[2].reason
    assert [m.rcpt_tos for m in smtp.received] == [["admin@example.com"]]


def test_no_server_is_transient_for_everyone(tmp_path, template_db, redis_server):
    app = make_app(tmp_path, template_db, redis_server, MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(),
                   MAIL_USE_TLS=False, MAIL_TIMEOUT=2)
    with app.app_context():
        results = delivery.send_batch(messages_for(*THREE))
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
            results = delivery.send_batch(messages_for("ben@example.com"))
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
    with SMTPServer(tls_context=self_signed_context(tmp_path)) as server:
        yield server.handler


def send_over_starttls(tmp_path, template_db, redis_server, port, host="127.0.0.1", **config):
    """Send one reminder to Ben through ``host:port`` with STARTTLS; the per-recipient results."""
    app = make_app(tmp_path, template_db, redis_server, MAIL_SERVER=host, MAIL_PORT=port, MAIL_USE_TLS=True,
                   MAIL_TIMEOUT=5, **config)
    with app.app_context():
        return delivery.send_batch(messages_for("ben@example.com"))


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
    assert [m.rcpt_tos for m in tls_smtp.received] == [["ben@example.com"]]
    assert refused[0].outcome is Outcome.TRANSIENT and "CERTIFICATE_VERIFY_FAILED" in refused[0].reason
