"""SMTP down for a simulated 10 minutes: the reminders catch up once it is back, and none is sent twice.

The whole production path runs, on a simulated clock: the cron's sweep every 15 minutes enqueues send batches with
RQ Retry; an RQ worker (in this process) runs them; RQ's retry schedule and the panel's clock are the same frozen
clock; the aiosmtpd server is stopped, then started again on the same port after 10 minutes.
"""
from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import rq.job
from aiosmtpd.controller import Controller
from rq import SimpleWorker
from smtp_server import Recorder
from support import connect_sage, free_port, make_app

from panel import clock
from panel.extensions import db
from panel.jobs import get_queue
from panel.models import Company, ReminderDelivery, User
from panel.redis_conn import get_redis
from panel.reminders import sweep

LONDON = ZoneInfo("Europe/London")
START = datetime(2026, 11, 20, 9, 0, tzinfo=LONDON).astimezone(timezone.utc)  # past the 08:00 send hour
OUTAGE = timedelta(minutes=10)
STEP = timedelta(seconds=30)
SWEEP_EVERY = timedelta(minutes=15)  # PANEL_SWEEP_INTERVAL_MINUTES
EXTRA_RECIPIENTS = 10  # 12 opted-in people in all …
MAIL_BATCH = 5         # … in three send batches (three jobs, retried independently)


class Simulation:
    """Runs the sweep, RQ's scheduler and an RQ worker at simulated instants."""

    def __init__(self, app):
        self.app = app
        self.queue = get_queue(app=app)
        self.worker = SimpleWorker([self.queue], connection=get_redis(app))
        self.sweeps: list[dict] = []

    def run_due_retries(self, at: datetime) -> int:
        """What RQ's scheduler does: move jobs whose retry time has come back onto the queue."""
        registry = self.queue.scheduled_job_registry
        ids = registry.get_jobs_to_schedule(int(at.timestamp()))
        for job in rq.job.Job.fetch_many(ids, connection=self.queue.connection):
            if job is not None:
                self.queue._enqueue_job(job)
            registry.remove(job.id if job is not None else None)
        return len(ids)

    def tick(self, at: datetime) -> None:
        clock.freeze(at)
        if (at - START) % SWEEP_EVERY == timedelta(0):
            with self.app.app_context():
                self.sweeps.append(sweep.run(at))  # claims what is due and enqueues batches, as the cron job does
                db.session.remove()
        self.run_due_retries(at)
        if self.queue.count:
            self.worker.work(burst=True, logging_level="ERROR")


@pytest.fixture(params=[600, 120], ids=["default lease", "short lease"])
def outage_app(request, tmp_path, template_db, redis_server, monkeypatch):
    """A 2-minute lease makes the sweeps hand the waiting reminders out again while RQ's retries are pending:
    two paths to the same rows, and still one email each."""
    port = free_port()
    app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://crm.example.com",
                   MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_USE_TLS=False, MAIL_USE_SSL=False,
                   MAIL_USERNAME=None, MAIL_PASSWORD=None, MAIL_TIMEOUT=5,
                   PANEL_REMINDER_LEASE_SECONDS=request.param)
    get_redis(app).flushdb()
    with app.app_context():
        company = Company.query.filter_by(name="Demo Ltd").one()
        for i in range(EXTRA_RECIPIENTS):
            db.session.add(User(company=company, email=f"r{i:02d}@example.com", name=f"R {i:02d}",
                                password_hash="x", notify_sage_token=True))
        db.session.commit()
        consent = START - timedelta(days=70)
        clock.freeze(consent)
        connect_sage(at=consent)
        expected = sorted(u.email for u in User.query.filter_by(company_id=company.id, notify_sage_token=True))
        db.session.remove()
    # The worker's jobs run in this process on this app, and RQ schedules its retries on the panel's clock.
    import panel.jobs

    monkeypatch.setattr(panel.jobs, "_app", app)
    monkeypatch.setattr(panel.jobs, "_app_pid", os.getpid())
    monkeypatch.setattr(rq.job, "now", clock.now)
    monkeypatch.setattr(sweep, "MAIL_BATCH", MAIL_BATCH)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield app, port, expected, request.param
    for sig, handler in handlers.items():  # the in-process RQ worker installed its own; Ctrl-C must stop pytest
        signal.signal(sig, handler)
    clock.freeze(None)


def test_smtp_down_ten_minutes_then_every_reminder_once(outage_app):
    app, port, expected, lease = outage_app
    assert len(expected) == 12
    recorder = Recorder()
    server = Controller(recorder, hostname="127.0.0.1", port=port)  # not started: the mail server is down
    sim = Simulation(app)
    delivered_at: dict[str, datetime] = {}
    try:
        at = START
        while at <= START + timedelta(minutes=45):
            if at == START + OUTAGE:
                server.start()  # back on the same port
            sim.tick(at)
            for address in recorder.to():
                delivered_at.setdefault(address, at)
            if at < START + OUTAGE:
                assert recorder.messages == []
            at += STEP
    finally:
        server.stop()

    recovered = sum(r["recovered"] for r in sim.sweeps)
    assert sim.sweeps[0]["claimed"] == 12 and sum(r["claimed"] for r in sim.sweeps) == 12
    assert (recovered > 0) == (lease < OUTAGE.total_seconds())  # the short lease: the sweep re-sent them too
    counts = Counter(recorder.to())
    assert sorted(counts) == expected, "a reminder was lost"
    assert set(counts.values()) == {1}, [a for a, n in counts.items() if n > 1]
    # Caught up by the first retry after the outage (RQ Retry: 30, 60, 120, 300, 600 s …), not the next day.
    assert max(delivered_at.values()) <= START + OUTAGE + timedelta(minutes=11)
    with app.app_context():
        rows = ReminderDelivery.query.all()
        assert len(rows) == 12 and {r.status for r in rows} == {"sent"}
        assert min(r.attempts for r in rows) >= 2  # each was tried while the server was down, then sent
        assert {r.local_date for r in rows} == {START.astimezone(LONDON).date()}
    # Later sweeps that day find nothing left to do.
    clock.freeze(START + timedelta(hours=3))
    with app.app_context():
        assert sweep.run(clock.now(), inline=True)["claimed"] == 0
    assert len(recorder.messages) == 12
