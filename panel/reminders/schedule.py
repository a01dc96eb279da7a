"""The reminders' background work: the jobs rq cron and the screen enqueue, and the test email.

``rq cron`` enqueues ``sweep`` and ``check_connections`` by name (panel/reminders/crontab.py, which does not import
this module). Jobs are enqueued by dotted path, so the web process imports this module only to start a test email
and read its progress.
"""
from __future__ import annotations

import contextlib
import re
import time
from dataclasses import asdict, dataclass
from datetime import timedelta

import redis
from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.utils import now as rq_now

from .. import audit, clock, events, heartbeat
from ..audit import Action
from ..extensions import db
from ..jobs import QueueUnavailable, enqueue, with_app_context
from ..localtime import plural
from ..models import User
from ..redis_conn import get_redis
from ..sage import store
from . import checks, delivery, notice_send
from . import sweep as sweeper
from .mail import UnsafeHeader, compose_reminder

TEST_JOB = "panel.reminders.schedule.send_test_email"
JOB_ID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")  # RQ: uuid4
GIVE_UP = timedelta(seconds=90)  # stop polling after this long without a final answer
UNAVAILABLE = ("Background jobs are unavailable right now, so the test email could not be queued. "
               "Please try again shortly.")
COOLDOWN_SECONDS = 60  # one test email per person per minute: a double click or a stuck key can't flood an inbox


# ---- jobs (run by the worker) -------------------------------------------------------------------------------------

@with_app_context
def sweep() -> dict:
    """The periodic reminder sweep: claim every reminder that is due and enqueue the send batches; then record the
    scheduler's heartbeat (in the database: it must show while Redis, which the schedule runs on, is down)."""
    started = time.monotonic()
    summary = sweeper.run(clock.now())
    heartbeat.beat(heartbeat.SWEEP, clock.now())
    events.emit(events.SWEEP_FINISHED, seconds=round(time.monotonic() - started, 3), claimed=summary["claimed"],
                batches=summary["batches"], channel_batches=summary.get("channel_batches", 0))
    return summary


@with_app_context
def send_notices(ids: list[int]) -> dict:
    """Send one batch of the notice ledger (channel messages; alerts); refusals are retried after the lease."""
    return asdict(notice_send.send(ids))


@with_app_context
def check_connections() -> dict:
    """The connection checks' tick: claim the checks due now and queue them in small batches."""
    return checks.tick()


@with_app_context
def check_batch(company_ids: list[int]) -> dict:
    """Check these companies' Sage connections now; alerts for what opens or closes an incident go at once."""
    return checks.check_batch(company_ids)


@with_app_context
def send_batch(ids: list[int]) -> dict:
    """Send one batch of claimed reminders over one SMTP connection; transient failures raise so RQ retries."""
    return asdict(sweeper.send_claimed(ids))


@with_app_context
def send_test_email(user_id: int) -> dict:
    """Send user ``user_id`` the reminder as it would look to them now (a preview when Sage isn't connected)."""
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return {"ok": False, "to": None, "reason": "that account no longer exists or is inactive"}
    token = store.current(user.company_id)
    try:
        message = compose_reminder(user.company, user, token, clock.now(), current_app.config["PANEL_BASE_URL"],
                                   test=True)
    except UnsafeHeader:
        return {"ok": False, "to": user.email, "reason": "your email address can't be used in an email header"}
    outcome = delivery.send_batch([message])[0]
    detail = f"To {user.email}: " + ("sent" if outcome.sent else f"failed ({outcome.reason})")
    audit.record(user.company_id, Action.TEST_EMAIL, detail, actor=user, commit=True)
    return {"ok": outcome.sent, "to": user.email, "reason": outcome.reason, "outcome": outcome.outcome.value,
            "preview": token is None, "outbox": delivery.uses_outbox(current_app.config)}


# ---- the "Send test email" button (web process): queue the job, then read back how it went ----------------------

@dataclass(frozen=True)
class TestEmail:
    """What the button's fragment shows: still going (poll again), or a final result."""

    job_id: str | None = None
    polling: bool = False
    ok: bool | None = None
    message: str = ""


def cooldown_key(user_id: int) -> str:
    """The Redis key whose TTL is the person's wait before another test email."""
    return f"panel:test-email:cooldown:{user_id}"


def start_test_email(user) -> TestEmail:
    """Queue a test email to ``user``; a clear message instead when Redis is down or one went out under a minute ago."""
    key = cooldown_key(user.id)
    try:
        connection = get_redis()
        if not connection.set(key, "1", nx=True, ex=COOLDOWN_SECONDS):
            wait = max(int(connection.ttl(key)), 1)
            return TestEmail(ok=None, message=f"A test email was sent to {user.email} moments ago. "
                                               f"You can send another in {plural(wait, 'second')}.")
    except (redis.RedisError, OSError):
        return TestEmail(ok=False, message=UNAVAILABLE)
    try:
        job = enqueue(TEST_JOB, user.id, job_timeout=120, result_ttl=3600, failure_ttl=3600)
    except QueueUnavailable:
        with contextlib.suppress(redis.RedisError, OSError):  # nothing was queued: don't make the person wait
            connection.delete(key)
        return TestEmail(ok=False, message=UNAVAILABLE)
    return TestEmail(job.id, True, None, f"Sending a test email to {user.email}…")


def test_email_status(job_id: str, user) -> TestEmail | None:
    """How the job ``job_id`` went; None when it does not exist or was not started by ``user``."""
    if not JOB_ID.fullmatch(job_id or ""):
        return None
    try:
        job = Job.fetch(job_id, connection=get_redis())
        if job.func_name != TEST_JOB or list(job.args[:1]) != [user.id]:
            return None
        state = job.get_status(refresh=False)
        result = job.return_value() if state == "finished" else None
    except NoSuchJobError:
        return None
    except (redis.RedisError, OSError):
        return TestEmail(ok=False, message="Background jobs are unavailable right now, so the test email's "
                                           "progress can't be checked.")
    if state == "finished" and isinstance(result, dict):
        if result.get("ok"):
            where = " (written to the demo outbox)" if result.get("outbox") else ""
            preview = " — a preview, as Sage is not connected yet" if result.get("preview") else ""
            return TestEmail(job_id, False, True, f"Sent to {result.get('to')}{where}{preview}.")
        return TestEmail(job_id, False, False, f"Couldn't send: {result.get('reason') or 'unknown error'}.")
    if state in ("finished", "failed", "stopped", "canceled"):
        return TestEmail(job_id, False, False, "Couldn't send: the background job failed. Please try again.")
    if job.enqueued_at and rq_now() - job.enqueued_at > GIVE_UP:  # RQ's own (real) clock, not the panel's
        waiting = ("No background worker has picked up the test email yet; it will be sent when one is running."
                   if state == "queued" else "The test email is taking unusually long; check your inbox later.")
        return TestEmail(job_id, False, None, waiting)
    return TestEmail(job_id, True, None, f"Sending a test email to {user.email}…")
