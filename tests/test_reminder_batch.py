"""A send batch is read once (issue 13): what changes after that read still stops a reminder, at its DATA mark; the
batch's reads do not grow with its size; the admins each reminder names are those the recipients list names."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from smtp_server import Recorder, SMTPServer
from sqlalchemy import event
from support import connect_sage, make_app

from panel import clock
from panel.extensions import db
from panel.models import Company, ReminderDelivery, User
from panel.reminders import recipients, sweep
from panel.reminders.batch import admins_of
from panel.reminders.sending import send_claimed

LONDON = ZoneInfo("Europe/London")
NINE = datetime(2026, 11, 20, 9, 0, tzinfo=LONDON).astimezone(timezone.utc)  # past Demo Ltd's 08:00 send hour


class ChangeOnFirstData(Recorder):
    """Accepts every message; while the first one's DATA is in, runs ``change`` (another session, committed)."""

    def __init__(self):
        super().__init__()
        self.change = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        change, self.change = self.change, None
        if change is not None:
            change()
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp():
    server = SMTPServer()
    server.handler = ChangeOnFirstData()
    server.handler.port = server.port
    server.controller.handler = server.handler
    with server:
        yield server


@pytest.fixture
def mail_app(tmp_path, template_db, redis_server, smtp):
    app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://crm.example.com", **smtp.config())
    with app.app_context():
        clock.freeze(NINE - timedelta(days=70))
        connect_sage()  # a 90-day token: its 28-day window is open at NINE
        clock.freeze(NINE)
        yield app
    clock.freeze(None)


def switch_off_chloe():
    User.query.filter_by(email="chloe@example.com").one().notify_sage_token = False


def renew():
    connect_sage()


def move_send_hour():
    Company.query.filter_by(name="Demo Ltd").one().reminder_hour = 10


@pytest.mark.parametrize("change, reason", [
    (switch_off_chloe, "recipient switched reminders off"),
    (renew, "the token was renewed"),
    (move_send_hour, "no longer due (reminder settings changed)"),
], ids=["switched off", "token renewed", "send hour moved"])
def test_a_change_after_the_batch_was_read_stops_the_next_reminder_at_its_data_mark(mail_app, smtp, change, reason):
    """The batch is read and re-checked before the first message; the change is committed while the first
    message's DATA is at the server, so only the DATA mark of the second (chloe's) can notice it."""
    claimed = sweep.find_and_claim(NINE)
    assert claimed.claimed == 2
    db.session.remove()

    def in_another_session():
        with mail_app.app_context():
            change()
            db.session.commit()
            db.session.remove()

    smtp.handler.change = in_another_session
    done = send_claimed(claimed.batches[0])
    assert (done.sent, done.skipped) == (1, 1)
    assert smtp.handler.to() == ["admin@example.com"]
    rows = {r.recipient: (r.status, r.reason, r.data_at) for r in ReminderDelivery.query.all()}
    assert rows["chloe@example.com"] == ("skipped", reason, None)  # never marked: nothing reached the server
    assert rows["admin@example.com"][0] == "sent"


def test_a_batch_reads_the_database_the_same_number_of_times_whatever_its_size(mail_app, smtp):
    """Reading is per batch (rows, recipients, companies, tokens, admins), not per message."""
    company = Company.query.filter_by(name="Demo Ltd").one()
    for i in range(5):
        db.session.add(User(company=company, email=f"extra{i}@example.com", name=f"Extra {i}", password_hash="x",
                            notify_sage_token=True))
    db.session.commit()
    ids = sweep.find_and_claim(NINE).batches[0]
    assert len(ids) == 7
    db.session.remove()
    reads: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT") and "FOR NO KEY UPDATE" not in statement.upper():
            reads.append(statement)  # the person's row lock before each mark (PostgreSQL) is a write guard

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert send_claimed(ids[:2]).sent == 2
        two = len(reads)
        reads.clear()
        assert send_claimed(ids[2:]).sent == 5
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(reads) == two <= 5, reads


def test_admins_named_for_many_companies_are_those_the_recipients_list_names(app):
    """batch.admins_of (one query for a batch's companies) agrees with recipients.admins (one company)."""
    with app.app_context():
        demo = Company.query.filter_by(name="Demo Ltd").one()
        other = Company(name="Empty Co")
        db.session.add(other)
        names = ["bob", "Alice", "dave", "Carol", "eve", "Frank", "alice"]
        for i, name in enumerate(names):
            db.session.add(User(company=demo, email=f"a{i}@example.com", name=name, password_hash="x", role="admin",
                                active=name != "eve"))
        db.session.commit()
        ids = sorted(c.id for c in Company.query.all())
        many = admins_of(ids)
        for company_id in ids:
            assert many[company_id] == recipients.admins(company_id), company_id
        assert many[demo.id].more > 0 and many[other.id].named == ()
