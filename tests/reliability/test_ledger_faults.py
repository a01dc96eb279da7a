"""Issue 10 item 1: the mail server accepted a reminder, then the ledger could not record it (a database locked
longer than the busy window, or the worker killed in between). The ledger write is retried; a row found still
'sending' after the lease is never re-sent blindly: it becomes 'uncertain' when DATA may have reached the server,
and is sent again only when it provably never did."""
from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from faults import SMTP, LedgerLock, LockOnAccept, midday_zone, process_env, sigkill_tree, start_worker
from smtp_server import Recorder
from support import Session, connect_sage, make_app, run_jobs

from panel import clock
from panel.extensions import db
from panel.models import Company, ReminderDelivery, User
from panel.redis_conn import get_redis
from panel.reminders import sweep
from panel.reminders.sending import send_claimed

LONDON = ZoneInfo("Europe/London")
NINE = datetime(2026, 11, 20, 9, 0, tzinfo=LONDON).astimezone(timezone.utc)  # past the 08:00 send hour


def statuses(app) -> dict[str, str]:
    with app.app_context():
        db.session.remove()
        return {r.recipient or str(r.user_id): r.status for r in ReminderDelivery.query.order_by(ReminderDelivery.id)}


def test_ledger_locked_after_the_250_is_retried_and_the_reminder_is_not_sent_again(
        tmp_path, template_db, redis_server):
    """A write lock taken the moment the server accepts the first reminder, held for 2.5 s: longer than the busy
    window (1 s), shorter than the lease. The 'sent' mark waits it out; nothing is sent twice."""
    lock = None
    handler = None
    with SMTP(LockOnAccept(None, 2.5)) as smtp:
        app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://crm.example.com",
                       PANEL_DB_BUSY_SECONDS=1, PANEL_REMINDER_LEASE_SECONDS=60, **smtp.config())
        handler = smtp.handler
        lock = handler.ledger_lock = LedgerLock(app.config["SQLALCHEMY_DATABASE_URI"])
        get_redis(app).flushdb()
        try:
            with app.app_context():
                clock.freeze(NINE - timedelta(days=70))
                connect_sage()
                clock.freeze(NINE)
                assert sweep.run(clock.now())["claimed"] == 2  # one send job for both opted-in people
                db.session.remove()
            run_jobs(app)
            while lock.held.is_set():  # minutes later, as far as the sweeps can tell
                time.sleep(0.05)
            # The lease runs out and the sweeps go on: a row still 'sending' would be handed out again.
            for minutes in (2, 15, 30):
                clock.freeze(NINE + timedelta(minutes=minutes))
                with app.app_context():
                    sweep.run(clock.now())
                    db.session.remove()
                run_jobs(app)
        finally:
            lock.release()
            clock.freeze(None)
    counts = Counter(handler.to())
    assert counts == {"admin@example.com": 1, "chloe@example.com": 1}, counts
    assert set(statuses(app).values()) == {"sent"}


@pytest.mark.slow
def test_worker_killed_between_the_250_and_the_ledger_write(tmp_path, template_db, redis_server, caplog):
    """A real worker: the server accepts the first reminder and the ledger is locked, so the worker is still
    trying to record it when it is SIGKILLed (with its work horse). After the lease that row is 'uncertain' —
    shown on the page, logged, counted as sent for the day — and not sent again; the other row, which never
    reached DATA, is sent once."""
    with SMTP(LockOnAccept(None, None)) as smtp:
        app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://crm.example.com",
                       PANEL_DB_BUSY_SECONDS=1, PANEL_REMINDER_LEASE_SECONDS=2, **smtp.config())
        lock = smtp.handler.ledger_lock = LedgerLock(app.config["SQLALCHEMY_DATABASE_URI"])
        get_redis(app).flushdb()
        with app.app_context():
            company = Company.query.filter_by(name="Demo Ltd").one()
            company.reminder_hour, company.timezone = 0, midday_zone()  # due now, whatever the real clock says
            db.session.commit()
            connect_sage(at=clock.now() - timedelta(days=85))
            assert sweep.run(clock.now())["claimed"] == 2
            db.session.remove()
        worker = start_worker(app, process_env(app, **smtp.env(), PANEL_DB_BUSY_SECONDS=1,
                                               PANEL_REMINDER_LEASE_SECONDS=2))
        try:
            assert lock.held.wait(60), "the worker never sent the first reminder"
            time.sleep(1.5)  # the worker is now waiting for the lock to record the 250
        finally:
            sigkill_tree(worker.pid)
            worker.wait(10)
            lock.release()
        first = smtp.handler.to()
        assert len(first) == 1
        time.sleep(2.5)  # the lease (2 s here) runs out
        with caplog.at_level(logging.WARNING, logger="panel.reminders"):
            with app.app_context():
                again = sweep.run(clock.now())
                db.session.remove()
        assert again["uncertain"] == 1 and again["recovered"] == 1  # the second row never reached DATA
        run_jobs(app)
        counts = Counter(smtp.handler.to())
        assert counts == {"admin@example.com": 1, "chloe@example.com": 1}, counts
        assert statuses(app) == {first[0]: "uncertain", ({"admin@example.com", "chloe@example.com"} - {first[0]}).pop(): "sent"}
        with app.app_context():
            row_id = ReminderDelivery.query.join(User).filter(User.email == first[0]).one().id
        # One event line names the row (events carry ids, never an email address).
        assert [r.levelno for r in caplog.records
                if getattr(r, "event", None) == "reminder.uncertain" and getattr(r, "row", None) == row_id] == \
            [logging.WARNING]
        # Counted as sent for today: later sweeps that day claim nothing for that person.
        with app.app_context():
            assert sweep.run(clock.now() + timedelta(minutes=15), inline=True)["claimed"] == 0
        page = Session(app.test_client(), "admin@example.com").client.get("/settings/sage").text
        assert "1 uncertain" in page
        with app.app_context():
            assert User.query.count() == 5


def test_two_rows_for_one_person_sent_at_once_send_one_message(tmp_path, template_db, redis_server):
    """London's reminders (send hour 00:00) claimed at midnight and not sent yet; at 09:00Z the company moves to
    Los Angeles, whose Sunday began at 08:00Z, after that claim: a second row per person for the same date. Both
    rows are sent at the same moment by two workers: the ledger lets one message per person through (the 20-hour
    rule is enforced when DATA is recorded, the person's row locked on PostgreSQL); the other is skipped."""
    import threading

    from panel.reminders import settings
    from panel.reminders.sending import TOO_SOON, send_claimed

    with SMTP(LockOnAccept(None, None)) as smtp:
        smtp.handler.armed = False  # no lock in this test
        app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://crm.example.com",
                       PANEL_REMINDER_LEASE_SECONDS=86400, **smtp.config())  # nothing abandoned here
        midnight = datetime(2027, 1, 10, tzinfo=timezone.utc)  # 00:00 Sun 10 Jan in London
        with app.app_context():
            company = Company.query.filter_by(name="Demo Ltd").one()
            company.reminder_hour = 0
            db.session.commit()
            clock.freeze(midnight - timedelta(days=70))
            connect_sage()
            first = sweep.find_and_claim(midnight).batches[0]
            clock.freeze(midnight + timedelta(hours=9))
            admin = User.query.filter_by(email="admin@example.com").one()
            settings.save(company.id, settings.SETTINGS["timezone"], "America/Los_Angeles", admin)
            second = sweep.find_and_claim(clock.now()).batches[0]
            assert len(first) == len(second) == 2 and not set(first) & set(second)
            db.session.remove()
        barrier, errors = threading.Barrier(2), []

        def send(ids):
            with app.app_context():
                barrier.wait()
                try:
                    send_claimed(ids)
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=send, args=(ids,)) for ids in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        clock.freeze(None)
        assert not errors, errors
        assert Counter(smtp.handler.to()) == {"admin@example.com": 1, "chloe@example.com": 1}
        with app.app_context():
            rows = ReminderDelivery.query.all()
            assert sorted(r.status for r in rows) == ["sent", "sent", "skipped", "skipped"]
            assert {r.reason for r in rows if r.status == "skipped"} == {TOO_SOON}


class DataTrouble(Recorder):
    """The first DATA for ``who``: the connection drops after the message arrived (``drop``), or a 451 comes back."""

    def __init__(self, who: str, drop: bool):
        super().__init__()
        self.who, self.drop, self.done = who, drop, False

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.done or self.who not in envelope.rcpt_tos:
            return await super().handle_DATA(server, session, envelope)
        self.done = True
        if not self.drop:
            return "451 4.3.0 Temporary failure, try again"
        await super().handle_DATA(server, session, envelope)  # the server has the message …
        server.transport.close()  # … but its answer never reaches the sender
        return "250 OK"


@pytest.mark.parametrize("drop", [True, False], ids=["connection lost during DATA", "451 to DATA"])
def test_an_answer_lost_during_data_is_uncertain_a_refusal_is_retried(tmp_path, template_db, redis_server, drop):
    handler = DataTrouble("admin@example.com", drop)
    with SMTP(handler) as smtp:
        app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://crm.example.com",
                       **smtp.config())
        with app.app_context():
            clock.freeze(NINE - timedelta(days=70))
            connect_sage()
            clock.freeze(NINE)
            first = sweep.run(NINE, inline=True)
            db.session.remove()
            for minutes in (1, 15, 30):  # RQ's retry, then the next sweeps
                clock.freeze(NINE + timedelta(minutes=minutes))
                send_claimed([r.id for r in ReminderDelivery.query.all()])  # as RQ's Retry of the batch would
                sweep.run(clock.now(), inline=True)
                db.session.remove()
        clock.freeze(None)
    counts = Counter(handler.to())
    assert counts == {"admin@example.com": 1, "chloe@example.com": 1}, counts
    if drop:
        assert (first["uncertain"], first["retry"]) == (1, 1)  # the next one waits for a new connection
        assert statuses(app)["admin@example.com"] == "uncertain"
    else:
        assert (first["uncertain"], first["retry"]) == (0, 1)
        assert statuses(app)["admin@example.com"] == "sent"
    with app.app_context():
        row = ReminderDelivery.query.join(User).filter(User.email == "admin@example.com").one()
        message = next(m for m in handler.messages if m["To"].addresses[0].addr_spec == "admin@example.com")
        assert message["Message-ID"] == (f"<sage-reminder.{row.company_id}.{row.user_id}.{row.generation}."
                                         f"{row.local_date}@crm.example.com>")  # the host of PANEL_BASE_URL
