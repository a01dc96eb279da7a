"""Fixtures of the sweep tests (tests/test_reminder_sweep.py, tests/reliability/test_reminder_calendar.py): an aiosmtpd
server and an app that sends through it, inside its app context, on a frozen clock released afterwards.

Test modules import the fixtures they use (``from sweep_fixtures import demo, mail_app, smtp``).
"""
from __future__ import annotations

import pytest
from smtp_server import SMTPServer
from support import make_app

from panel import clock
from panel.models import Company
from panel.redis_conn import get_redis


@pytest.fixture
def smtp():
    """The aiosmtpd server (``smtp.handler.messages``: what it received)."""
    with SMTPServer() as server:
        yield server


@pytest.fixture
def mail_app(tmp_path, template_db, redis_server, smtp):
    """The app sending through ``smtp``, its app context pushed; the clock is released afterwards."""
    app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://crm.example.com", **smtp.config())
    get_redis(app).flushdb()
    with app.app_context():
        yield app
    clock.freeze(None)


def demo() -> Company:
    """Demo Ltd (inside an app context)."""
    return Company.query.filter_by(name="Demo Ltd").one()
