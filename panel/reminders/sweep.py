"""The reminder sweep: find whose reminders are due, claim them in the ledger, then send each batch.

Sending re-checks every reminder just before it goes (one SMTP connection per batch) and marks the ledger.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from rq import Retry
from sqlalchemy import and_, or_, select

from .. import clock, events
from ..extensions import db
from ..jobs import enqueue
from ..localtime import plural
from ..models import Company, ReminderDelivery, SageToken, User
from ..models import DeliveryStatus as S
from ..sage import store
from . import delivery, ledger
from .delivery import Outcome
from .mail import UnsafeHeader, compose_reminder
from .plan import CompanyPlan, company_is_due, due_reminders, local_date

COMPANY_BATCH = 500  # companies read per query; the query only ever returns companies whose window is open
MAIL_BATCH = 50      # reminders per send job (one SMTP connection each)
RETRY_INTERVALS = [30, 60, 120, 300, 600, 900]  # seconds between retries of a batch with transient failures

SEND_JOB = "panel.reminders.schedule.send_batch"


@dataclass
class SweepResult:
    """What one sweep did."""

    companies_due: int = 0
    claimed: int = 0
    batches: list[list[int]] = field(default_factory=list)
    recovered: int = 0


def _open_windows(now: datetime, after: tuple | None):
    """Companies whose reminder window has opened (or which have expired), paged by (remind_from, company_id).

    Keyset paging on the (remind_from, company_id) index reads only open windows, never the companies not due.
    """
    query = (select(SageToken.remind_from, SageToken.company_id, SageToken.generation, SageToken.expires_at,
                    Company.timezone, Company.reminder_hour, Company.reminder_days)
             .join(Company, Company.id == SageToken.company_id)
             .where(SageToken.remind_from <= now))
    if after is not None:
        query = query.where(or_(SageToken.remind_from > after[0],
                                and_(SageToken.remind_from == after[0], SageToken.company_id > after[1])))
    return db.session.execute(
        query.order_by(SageToken.remind_from, SageToken.company_id).limit(COMPANY_BATCH)).all()


def _recipients(company_ids: list[int]) -> dict[int, list[int]]:
    """Active, opted-in users of these companies."""
    found: dict[int, list[int]] = {}
    rows = db.session.execute(
        select(User.company_id, User.id).where(User.company_id.in_(company_ids), User.active.is_(True),
                                               User.notify_sage_token.is_(True)).order_by(User.id))
    for company_id, user_id in rows:
        found.setdefault(company_id, []).append(user_id)
    return found


def find_and_claim(now: datetime) -> SweepResult:
    """Claim every due reminder (bounded batches of companies); returns the claimed ids in mail batches."""
    result = SweepResult()
    claimed: list[int] = []
    after = None
    while True:
        rows = _open_windows(now, after)
        if not rows:
            break
        after = (rows[-1].remind_from, rows[-1].company_id)
        plans = [CompanyPlan(r.company_id, r.timezone, r.reminder_hour, r.reminder_days, r.generation, r.expires_at)
                 for r in rows]
        plans = [p for p in plans if company_is_due(now, p)]
        result.companies_due += len(plans)
        if not plans:
            continue
        ids = [p.company_id for p in plans]
        dates = {local_date(now, p.tz_name) for p in plans}
        dues = due_reminders(now, plans, _recipients(ids), ledger.sent_keys(ids, dates))
        claimed.extend(ledger.claim(dues, now))
    result.claimed = len(claimed)
    fresh = set(claimed)
    orphaned = [i for i in ledger.orphans(now) if i not in fresh]
    result.recovered = len(orphaned)
    todo = claimed + orphaned
    result.batches = [todo[i:i + MAIL_BATCH] for i in range(0, len(todo), MAIL_BATCH)]
    return result


class TransientDeliveryError(RuntimeError):
    """Some reminders hit a transient failure; raising makes RQ retry the job with backoff."""

    def __init__(self, message: str, result: "BatchResult"):
        super().__init__(message)
        self.result = result


@dataclass
class BatchResult:
    """Counts of one batch."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: int = 0
    reasons: list[str] = field(default_factory=list)


def _why_not(row: ReminderDelivery, now) -> str | None:
    """Why this reminder must not go now (re-checked just before sending), or None when it should."""
    user = db.session.get(User, row.user_id, populate_existing=True)
    if user is None or not user.active:
        return "recipient is inactive"
    if not user.notify_sage_token or user.company_id != row.company_id:
        return "recipient switched reminders off"
    token = store.current(row.company_id)
    if token is None:
        return "Sage was disconnected"
    if token.generation != row.generation:
        return "the token was renewed"
    company = db.session.get(Company, row.company_id, populate_existing=True)
    plan = CompanyPlan(company.id, company.timezone, company.reminder_hour, company.reminder_days,
                       token.generation, token.expires_at)
    if local_date(now, company.timezone) != row.local_date:
        return "that day is over (today's reminder is claimed separately)"
    if not company_is_due(now, plan):
        return "no longer due (reminder settings changed)"
    return None


def send_claimed(ids: list[int]) -> BatchResult:
    """Send the reminders of ledger rows ``ids``; raises TransientDeliveryError when some should be retried."""
    result = BatchResult()
    base_url = current_app.config["PANEL_BASE_URL"]
    with delivery.open_sender() as send:
        for row_id in ids:
            now = clock.now()
            if not ledger.take(row_id, now):
                continue  # already handled, or another worker is on it
            row = db.session.get(ReminderDelivery, row_id, populate_existing=True)
            reason = _why_not(row, now)
            if reason:
                ledger.finish(row_id, S.SKIPPED, now, reason=reason)
                result.skipped += 1
                continue
            user = db.session.get(User, row.user_id)
            try:
                message = compose_reminder(user.company, user, store.current(row.company_id), now, base_url)
            except UnsafeHeader as exc:
                ledger.finish(row_id, S.FAILED, now, user.email, f"unsafe address or name: {exc}")
                result.failed += 1
                continue
            outcome = send(message)
            fields = {"company_id": row.company_id, "user_id": row.user_id, "generation": row.generation,
                      "local_date": row.local_date.isoformat(), "attempt": row.attempts}
            if outcome.outcome is Outcome.SENT:
                ledger.finish(row_id, S.SENT, clock.now(), user.email)
                result.sent += 1
                events.emit(events.REMINDER_SENT, **fields)
            elif outcome.outcome is Outcome.PERMANENT or row.attempts >= ledger.MAX_ATTEMPTS:
                ledger.finish(row_id, S.FAILED, clock.now(), user.email, outcome.reason)
                result.failed += 1
                result.reasons.append(outcome.reason)
                events.emit(events.REMINDER_FAILED, reason=outcome.reason, level=logging.WARNING, **fields)
            else:
                ledger.release(row_id, outcome.reason)
                result.retry += 1
                result.reasons.append(outcome.reason)
                events.emit(events.REMINDER_RETRY, reason=outcome.reason, level=logging.WARNING, **fields)
    if result.retry:
        raise TransientDeliveryError(f"{plural(result.retry, 'reminder')} to retry: {result.reasons[-1]}", result)
    return result


def run(now: datetime, inline: bool = False) -> dict:
    """Claim what is due and send it: through the queue (one job per batch, RQ Retry), or here when ``inline``."""
    result = find_and_claim(now)
    summary = {"companies_due": result.companies_due, "claimed": result.claimed, "recovered": result.recovered,
               "batches": len(result.batches), "sent": 0, "failed": 0, "skipped": 0, "retry": 0}
    for batch in result.batches:
        if not inline:
            enqueue(SEND_JOB, batch, retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                    job_timeout=600, description=f"send {plural(len(batch), 'Sage token reminder')}")
            continue
        try:
            done = send_claimed(batch)
        except TransientDeliveryError as exc:
            done = exc.result
        for key in ("sent", "failed", "skipped", "retry"):
            summary[key] += getattr(done, key)
    return summary
