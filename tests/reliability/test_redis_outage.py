"""Issue 16 items 1 and 2: production's processes (the Procfile's commands: two web instances, two workers and
two crons, as README "Production" recommends) against one database and one redis-server that is stopped for real
for about 30 s, spanning cron ticks and a job in flight.

The crons and the workers wait Redis out (backoff) instead of exiting; sweeps resume when it is back; a reminder
that became due during the outage goes out once; the one in flight when Redis went is sent once, although both
crons enqueue every sweep; the scheduler heartbeat's warning appears on the Sage page (and /readyz) while no
sweep runs, and clears after.
"""
from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
import requests
from faults import SMTP, midday_zone
from oauth_flow import panel_sign_in
from smtp_server import Recorder
from stack import RedisServer, Stack, stack_env, wait_until
from support import connect_sage, csrf_from, make_app, postgres_url

from panel import clock
from panel.extensions import db
from panel.models import Company, ReminderDelivery

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not postgres_url(), reason=(
    "production's topology (web instances, workers and cron on one PostgreSQL): "
    "the PostgreSQL run (make test-postgres) covers it"))]

INTERVAL_MINUTES = 0.2   # a sweep every 12 s: the heartbeat is stale after 24 s without one
OUTAGE = 32              # seconds Redis is down: several cron ticks, and longer than two sweep intervals
WARNING = "Reminders are not being sent: the scheduler has not run since"


def _page(session: requests.Session, base: str) -> str:
    return session.get(f"{base}/settings/sage", timeout=10).text


def _scheduler_check(base: str) -> dict:
    return requests.get(f"{base}/readyz", timeout=10).json()["checks"]["scheduler"]


def test_a_redis_outage_spanning_cron_ticks_and_a_running_job(tmp_path, template_db, redis_server):
    server = RedisServer(tmp_path / "redis").start()
    app = make_app(tmp_path, template_db, redis_server, REDIS_URL=server.url)
    with app.app_context():
        for name in ("Demo Ltd", "Other Co"):
            company = Company.query.filter_by(name=name).one()
            company.reminder_hour, company.timezone = 0, midday_zone()  # today's send hour has passed
        db.session.commit()
        # Other Co is due from the start; Demo Ltd's window opens only when its admin widens it, during the outage.
        connect_sage("Other Co", at=clock.now() - timedelta(days=85))
        connect_sage("Demo Ltd", at=clock.now() - timedelta(days=30))
        db.session.remove()
    handler = Recorder()
    handler.stall_rcpt["oscar@other.example"] = 12  # Other Co's batch is in flight when Redis goes
    with SMTP(handler) as smtp, Stack(stack_env(app, server.url, PANEL_SWEEP_INTERVAL_MINUTES=INTERVAL_MINUTES,
                                                **smtp.env()), tmp_path) as stack, server:
        try:
            web_a, web_b = stack.web(), stack.web()
            admin_a, admin_b = panel_sign_in(web_a.url), panel_sign_in(web_b.url)
            # RQ's job monitoring every 2 s (30 s by default): the worker touches Redis while its job runs.
            workers = [stack.start("worker", "--job-monitoring-interval 2") for _ in range(2)]
            crons = [stack.start("cron") for _ in range(2)]  # two, as recommended: every sweep is enqueued twice
            assert handler.stalled.wait(90), stack.text()  # the cron's first sweep ran; a worker is sending
            wait_until(lambda: _scheduler_check(web_b.url)["ok"], 30, "the first heartbeat")
            assert WARNING not in _page(admin_b, web_b.url)

            server.stop()
            down_at = time.monotonic()
            csrf = csrf_from(_page(admin_a, web_a.url))
            saved = admin_a.post(f"{web_a.url}/settings/sage/reminders/days", data={"reminder_days": "90"},
                                 headers={"X-CSRFToken": csrf, "HX-Request": "true"}, timeout=10)
            assert saved.status_code == 200 and "Saved" in saved.text  # the database, not Redis
            wait_until(lambda: WARNING in _page(admin_b, web_b.url), OUTAGE - 2, "the warning on the Sage page")
            warned_after = time.monotonic() - down_at
            check = _scheduler_check(web_b.url)
            assert not check["ok"] and "no reminder sweep" in check["detail"], check
            time.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))
            assert all(p.alive() for p in workers + crons), stack.text()  # waited it out, did not exit

            server.start()
            up_at = time.monotonic()
            wait_until(lambda: sorted(handler.to()) == sorted(
                ["olga@other.example", "oscar@other.example", "admin@example.com", "chloe@example.com"]),
                60, "the reminder that became due during the outage")
            sent_after = time.monotonic() - up_at
            wait_until(lambda: WARNING not in _page(admin_b, web_b.url), 30, "the warning to clear")
            cleared_after = time.monotonic() - up_at
            wait_until(lambda: _scheduler_check(web_b.url)["ok"], 30, "readiness to come back")
            time.sleep(INTERVAL_MINUTES * 60 + 3)  # one more sweep: nothing goes twice
            assert Counter(handler.to()) == {"olga@other.example": 1, "oscar@other.example": 1,
                                             "admin@example.com": 1, "chloe@example.com": 1}
            assert all(p.alive() for p in workers + crons), stack.text()
            assert "Redis is unreachable" in "".join(p.text() for p in workers + crons)  # logged, with backoff
            with app.app_context():
                db.session.remove()
                assert {r.status for r in ReminderDelivery.query.all()} == {"sent"}
            # Stopped while Redis is away again, a worker stops: its teardown no longer waits for Redis.
            server.stop()
            time.sleep(1)
            workers[0].proc.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            workers[0].proc.wait(15)
            assert time.monotonic() - stopping < 10, stack.text()
            print(f"outage {OUTAGE} s: warning shown {warned_after:.1f} s into it; after Redis returned, the due "
                  f"reminders were sent in {sent_after:.1f} s and the warning cleared in {cleared_after:.1f} s")
        except BaseException:
            print(stack.text())
            raise
