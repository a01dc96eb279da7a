"""Send claimed reminders: re-check each one just before it goes, one SMTP connection per batch, mark the ledger."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from .. import clock
from ..extensions import db
from ..models import Company, DeliveryStatus as S, ReminderDelivery, User
from ..sage import store
from . import delivery, ledger
from .delivery import Outcome
from .mail import UnsafeHeader, compose_reminder
from .plan import CompanyPlan, company_is_due, local_date


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
            message.msgId = f"<sage-reminder.{row.company_id}.{row.user_id}.{row.generation}.{row.local_date}@panel>"
            outcome = send(message)
            if outcome.outcome is Outcome.SENT:
                ledger.finish(row_id, S.SENT, clock.now(), user.email)
                result.sent += 1
            elif outcome.outcome is Outcome.PERMANENT or row.attempts >= ledger.MAX_ATTEMPTS:
                ledger.finish(row_id, S.FAILED, clock.now(), user.email, outcome.reason)
                result.failed += 1
                result.reasons.append(outcome.reason)
            else:
                ledger.release(row_id, outcome.reason)
                result.retry += 1
                result.reasons.append(outcome.reason)
    if result.retry:
        raise TransientDeliveryError(f"{result.retry} reminder(s) to retry: {result.reasons[-1]}", result)
    return result
