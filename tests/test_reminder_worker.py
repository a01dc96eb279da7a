"""Reminders through real RQ workers: a worker killed with SIGKILL mid-batch, restarted: no duplicate, no miss."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest
from smtp_server import SMTPServer
from support import base_env, make_app, run_jobs

from panel import clock
from panel.extensions import db
from panel.jobs import get_queue
from panel.models import Company, ReminderDelivery, User
from panel.reminders import sweep
from panel.sage import store

ROOT = Path(__file__).resolve().parent.parent
RQ = str(Path(sys.executable).parent / "rq")


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


def worker_env(app, smtp) -> dict:
    env = dict(os.environ)
    env.update(base_env())
    env.update(PANEL_INSTANCE_PATH=app.instance_path, REDIS_URL=app.config["REDIS_URL"],
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], MAIL_SERVER="127.0.0.1",
               MAIL_PORT=str(smtp.port), MAIL_USE_TLS="0", PANEL_BASE_URL="https://crm.example.com",
               PANEL_REMINDER_LEASE_SECONDS="2")
    return env


def midday_zone() -> str:
    """An IANA zone (Etc/GMT±N) where it is about noon now: the worker runs on the real clock."""
    offset = 12 - datetime.now(timezone.utc).hour  # hours east of UTC; Etc/ names invert the sign
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def test_sigkill_mid_batch_then_restart_no_duplicate_no_miss(tmp_path, template_db, redis_server, smtp):
    app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://crm.example.com",
                   PANEL_REMINDER_LEASE_SECONDS=2, **smtp.config())
    with app.app_context():
        from panel.redis_conn import get_redis

        get_redis(app).flushdb()
        company = Company.query.filter_by(name="Demo Ltd").one()
        for i in range(6):
            db.session.add(User(company=company, email=f"r{i}@example.com", name=f"R {i}", password_hash="x",
                                notify_sage_token=True))
        db.session.commit()
        company.reminder_hour = 0  # due all day, whatever the real clock says
        company.timezone = midday_zone()  # far from local midnight, so the ledger's local date can't turn mid-test
        db.session.commit()
        admin = User.query.filter_by(email="admin@example.com").one()
        now = clock.now()
        store.save_new(company, admin, {"access_token": "a", "refresh_token": "r",
                                        "refresh_token_expires_in": 5 * 86400}, now - timedelta(days=1))
        expected = sorted(u.email for u in User.query.filter_by(company_id=company.id, notify_sage_token=True))
        assert len(expected) == 8
        # The 4th recipient's RCPT stalls: the worker is killed while it waits, after 3 were sent.
        victim = sorted(f"r{i}@example.com" for i in range(6))[1]
        smtp.handler.stall_rcpt[victim] = 30
        summary = sweep.run(clock.now())  # claims 8 and enqueues one batch job
        assert summary["claimed"] == 8 and summary["batches"] == 1
        job_id = get_queue(app=app).job_ids[0]

    env = worker_env(app, smtp)
    worker = subprocess.Popen([RQ, "worker", "-w", "panel.jobs.PanelWorker", "--url", app.config["REDIS_URL"],
                               "panel"], env=env, cwd=ROOT, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert smtp.handler.stalled.wait(60), "the batch never reached the stalled recipient"
        for proc in psutil.Process(worker.pid).children(recursive=True) + [psutil.Process(worker.pid)]:
            proc.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    delivered_before = smtp.handler.to()
    assert 0 < len(delivered_before) < 8

    with app.app_context():
        stuck = {r.status for r in ReminderDelivery.query.all()}
        # The killed worker's row never reached DATA (it hung at RCPT), so it was never marked: still claimed.
        assert stuck == {"sent", "claimed"}
        time.sleep(2.5)  # the lease (2 s in this test) runs out
        again = sweep.run(clock.now())  # recovers the abandoned rows, claims nothing new
        assert again["claimed"] == 0 and again["recovered"] == 8 - len(delivered_before)
    run_jobs(app)  # a new worker (in this process) picks the recovered batch up
    assert sorted(smtp.handler.to()) == expected, "a reminder was duplicated or missed"
    with app.app_context():
        db.session.remove()
        assert {r.status for r in ReminderDelivery.query.all()} == {"sent"}
        assert len(job_id) > 0
