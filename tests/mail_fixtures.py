"""Fixtures and helpers of the mail tests: an aiosmtpd server, an app that sends through it, composing and sending.

Test modules import the fixtures they use (``from mail_fixtures import mail_app, smtp``).
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from smtp_server import Received, SMTPServer
from support import make_app

from panel.models import User
from panel.redis_conn import get_redis
from panel.reminders import delivery
from panel.reminders.mail import compose_reminder

NOW = datetime(2027, 3, 20, 9, 30, tzinfo=timezone.utc)
BASE = "https://panel.example"
THREE = ("admin@example.com", "ben@example.com", "chloe@example.com")


@pytest.fixture
def smtp():
    """The aiosmtpd recorder (``smtp.received``: raw bytes; ``smtp.messages``: parsed) on 127.0.0.1."""
    with SMTPServer() as server:
        yield server.handler


@pytest.fixture
def mail_app(tmp_path, template_db, redis_server, smtp):
    """The app sending through the aiosmtpd server (plain SMTP on 127.0.0.1, short timeout)."""
    app = make_app(tmp_path, template_db, redis_server, MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port,
                   MAIL_USE_TLS=False, MAIL_TIMEOUT=5, PANEL_BASE_URL=BASE)
    get_redis(app).flushdb()
    return app


def people(*emails) -> list[User]:
    """Users by email, in the order given (inside an app context)."""
    return [User.query.filter_by(email=e).one() for e in emails]


def messages_for(*emails, token=None, now=NOW):
    """One composed reminder per person (a preview when ``token`` is None)."""
    return [compose_reminder(u.company, u, token, now, BASE) for u in people(*emails)]


def send_and_receive(smtp, message) -> Received:
    """Send one composed message through the app's SMTP path; what the server received, byte for byte."""
    before = len(smtp.received)
    [result] = delivery.send_batch([message])
    assert result.sent, result
    assert len(smtp.received) == before + 1
    return smtp.received[-1]
