"""The "Send test email" button: queue the job, then read back how it went (for the polling fragment)."""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import timedelta

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.utils import now as rq_now

from ..queue import QueueUnavailable, enqueue
from ..redis_conn import get_redis

JOB = "panel.reminders.jobs.send_test_email"
JOB_ID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")  # RQ: uuid4
GIVE_UP = timedelta(seconds=90)  # stop polling after this long without a final answer
UNAVAILABLE = "Background jobs are unavailable right now, so the test email could not be queued. Please try again shortly."
COOLDOWN_SECONDS = 60  # one test email per person per minute: a double click or a stuck key can't flood an inbox


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


def start(user) -> TestEmail:
    """Queue a test email to ``user``; a clear message instead when Redis is down or one went out under a minute ago."""
    key = cooldown_key(user.id)
    try:
        connection = get_redis()
        if not connection.set(key, "1", nx=True, ex=COOLDOWN_SECONDS):
            wait = max(int(connection.ttl(key)), 1)
            return TestEmail(ok=None, message=f"A test email was sent to {user.email} moments ago. "
                                               f"You can send another in {wait} second{'s' if wait != 1 else ''}.")
    except (redis.RedisError, OSError):
        return TestEmail(ok=False, message=UNAVAILABLE)
    try:
        job = enqueue(JOB, user.id, job_timeout=120, result_ttl=3600, failure_ttl=3600)
    except QueueUnavailable:
        with contextlib.suppress(redis.RedisError, OSError):  # nothing was queued: don't make the person wait
            connection.delete(key)
        return TestEmail(ok=False, message=UNAVAILABLE)
    return TestEmail(job.id, True, None, f"Sending a test email to {user.email}…")


def status(job_id: str, user) -> TestEmail | None:
    """How the job ``job_id`` went; None when it does not exist or was not started by ``user``."""
    if not JOB_ID.fullmatch(job_id or ""):
        return None
    try:
        job = Job.fetch(job_id, connection=get_redis())
        if job.func_name != JOB or list(job.args[:1]) != [user.id]:
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
