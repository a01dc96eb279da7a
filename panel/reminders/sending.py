"""Send a batch of claimed reminders over one SMTP connection: re-check each row, mark it in the ledger the moment
DATA goes (the one write that makes a sender the row's only sender), send, and record the answer — so a reminder is
re-sent only when it provably never reached the server."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy.exc import DBAPIError

from .. import clock, events
from ..extensions import db
from ..localtime import plural
from ..models import Company, ReminderDelivery, User
from ..models import DeliveryStatus as S
from ..sage import store
from . import delivery, ledger
from .delivery import NotSent, Outcome
from .mail import UnsafeHeader, compose_reminder
from .plan import CompanyPlan, company_is_due, local_date

TOO_SOON = "another reminder went to this person less than 20 hours ago"


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
    uncertain: int = 0
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


class DataGate:
    """The ``before_data`` hook of one message: marks the row in the ledger just before DATA goes, or stops it."""

    def __init__(self, row: ReminderDelivery, recipient: str):
        self.row_id, self.company_id, self.user_id, self.recipient = row.id, row.company_id, row.user_id, recipient
        self.passed = False       # marked: the server may have the message from here on
        self.refused: str | None = None  # why it was stopped
        self.lost = False         # another sender marked (or handled) the row first: it records the outcome

    def __call__(self) -> None:
        try:
            ok = ledger.mark_data(self.row_id, self.company_id, self.user_id, clock.now(), self.recipient)
            if not ok:
                self.lost = ledger.status_of(self.row_id) != S.CLAIMED.value
        except DBAPIError as exc:
            db.session.rollback()
            self.refused = f"the ledger could not be written ({getattr(exc, 'orig', exc)})"
            raise NotSent(self.refused) from exc
        if not ok:
            self.refused = "another sender has it" if self.lost else TOO_SOON
            raise NotSent(self.refused)
        self.passed = True


def _record(row_id: int, tries: int, gate: DataGate, outcome: delivery.Delivery, email: str,
            result: BatchResult, fields: dict) -> None:
    """Write what happened to one message to the ledger and the batch counts (``tries``: before this one).

    Takes plain values, not ORM objects: the ledger may be locked right now, and with SQLite even reading an
    expired attribute would wait for the lock (and fail) before the answer is safely recorded.
    """
    now, last = clock.now(), tries + 1 >= ledger.MAX_ATTEMPTS
    if outcome.sent:
        ledger.finish(row_id, S.SENT, now, email)
        result.sent += 1
        events.emit(events.REMINDER_SENT, **fields)
    elif gate.lost:
        pass  # the sender that marked it records it
    elif gate.refused == TOO_SOON:
        ledger.finish(row_id, S.SKIPPED, now, email, TOO_SOON, marked=False)
        result.skipped += 1
    elif gate.passed and outcome.code is None and outcome.outcome is Outcome.TRANSIENT:
        # The connection broke after DATA began and before the server answered: it may have the message.
        reason = f"{ledger.UNCERTAIN} (the connection broke during DATA: {outcome.reason})"
        ledger.finish(row_id, S.UNCERTAIN, now, email, reason)
        result.uncertain += 1
        events.emit(events.REMINDER_UNCERTAIN, reason=reason, level=logging.WARNING, **fields)
    elif outcome.outcome is Outcome.PERMANENT or last:
        ledger.finish(row_id, S.FAILED, now, email, outcome.reason, marked=gate.passed, tried=not gate.passed)
        result.failed += 1
        result.reasons.append(outcome.reason)
        events.emit(events.REMINDER_FAILED, reason=outcome.reason, level=logging.WARNING, **fields)
    else:
        ledger.release(row_id, now, outcome.reason, marked=gate.passed)
        result.retry += 1
        result.reasons.append(outcome.reason)
        events.emit(events.REMINDER_RETRY, reason=outcome.reason, level=logging.WARNING, **fields)


def send_claimed(ids: list[int]) -> BatchResult:
    """Send the reminders of ledger rows ``ids``; raises TransientDeliveryError when some should be retried."""
    result = BatchResult()
    base_url = current_app.config["PANEL_BASE_URL"]
    with delivery.open_sender() as send:
        for row_id in ids:
            now = clock.now()
            row = db.session.get(ReminderDelivery, row_id, populate_existing=True)
            if row is None or row.status != S.CLAIMED.value:
                continue  # already handled, or handed over by another sender
            reason = _why_not(row, now)
            if reason:
                ledger.finish(row_id, S.SKIPPED, now, reason=reason, marked=False)
                result.skipped += 1
                continue
            user = db.session.get(User, row.user_id)
            try:
                message = compose_reminder(user.company, user, store.current(row.company_id), now, base_url)
            except UnsafeHeader as exc:
                ledger.finish(row_id, S.FAILED, now, user.email, f"unsafe address or name: {exc}", marked=False)
                result.failed += 1
                continue
            email, tries = user.email, row.attempts
            fields = {"company_id": row.company_id, "user_id": row.user_id, "generation": row.generation,
                      "local_date": row.local_date.isoformat(), "attempt": tries + 1}
            gate = DataGate(row, email)
            _record(row_id, tries, gate, send(message, before_data=gate), email, result, fields)
    if result.retry:
        raise TransientDeliveryError(f"{plural(result.retry, 'reminder')} to retry: {result.reasons[-1]}", result)
    return result
