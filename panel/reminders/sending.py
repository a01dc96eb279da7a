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
from ..models import DeliveryStatus as S
from . import delivery, ledger
from .batch import Batch, Expect, Row, why_not_now
from .delivery import NotSent, Outcome
from .mail import UnsafeHeader, compose_reminder

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


class DataGate:
    """The ``before_data`` hook of one message: marks the row in the ledger just before DATA goes, or stops it."""

    def __init__(self, row: Row, recipient: str, expect: Expect | None = None):
        self.row, self.recipient, self.expect = row, recipient, expect
        self.passed = False       # marked: the server may have the message from here on
        self.refused: str | None = None  # why it was stopped
        self.skip: str | None = None     # ... when that means the reminder must not go today (recorded as skipped)
        self.lost = False         # another sender marked (or handled) the row first: it records the outcome

    def __call__(self) -> None:
        row = self.row
        try:
            ok = ledger.mark_data(row.id, row.company_id, row.user_id, clock.now(), self.recipient, self.expect)
            if not ok:
                self.lost = ledger.status_of(row.id) != S.CLAIMED.value
                if not self.lost:  # the 20-hour rule, or what the batch's re-check read has changed since
                    self.skip = (why_not_now(row, clock.now()) if self.expect is not None else None) or TOO_SOON
        except DBAPIError as exc:
            db.session.rollback()
            self.refused = f"the ledger could not be written ({getattr(exc, 'orig', exc)})"
            raise NotSent(self.refused) from exc
        if not ok:
            self.refused = "another sender has it" if self.lost else self.skip
            raise NotSent(self.refused)
        self.passed = True


def _record(row_id: int, tries: int, gate: DataGate, outcome: delivery.Delivery, email: str,
            result: BatchResult, fields: dict) -> None:
    """Write what happened to one message to the ledger and the batch counts (``tries``: before this one).

    Takes plain values, not ORM objects: the ledger may be locked right now, and with SQLite even reading an
    expired attribute would wait for the lock (and fail) before the answer is safely recorded.
    """
    if gate.lost and not outcome.sent:
        return  # another sender marked the row: it records the row's outcome
    now, last = clock.now(), tries + 1 >= ledger.MAX_ATTEMPTS
    if outcome.sent:
        ledger.sent(row_id, now, email)
        result.sent += 1
        events.emit(events.REMINDER_SENT, **fields)
    elif gate.skip:
        ledger.finish(row_id, S.SKIPPED, now, email, gate.skip, marked=False)
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
    """Send the reminders of ledger rows ``ids``; raises TransientDeliveryError when some should be retried.

    The batch is read at once (``batch.Batch``) and re-checked; the rows it stops are skipped together, before any
    SMTP. Each of the others is re-checked against the clock, composed, marked just before its DATA (one commit,
    which also verifies what the batch read) and recorded after the server's answer (one commit).
    """
    result = BatchResult()
    base_url = current_app.config["PANEL_BASE_URL"]
    batch = Batch(ids)
    now = clock.now()
    todo, skips = [], []
    for row in batch.claimed():
        reason = batch.why_not(row, now)
        if reason:
            skips.append((row.id, reason))
        else:
            todo.append(row)
    ledger.skip_many(skips, now)
    result.skipped += len(skips)
    with delivery.open_sender() as send:
        for row in todo:
            _send_one(batch, row, send, base_url, result)
    if result.retry:
        raise TransientDeliveryError(f"{plural(result.retry, 'reminder')} to retry: {result.reasons[-1]}", result)
    return result


def _send_one(batch: Batch, row: Row, send, base_url: str, result: BatchResult) -> None:
    """Re-check (on what the batch read, at the time now), compose, send with the DATA mark, record."""
    now = clock.now()
    reason = batch.why_not(row, now)  # the day may have ended, or the send hour moved, while the batch went out
    if reason:
        ledger.finish(row.id, S.SKIPPED, now, reason=reason, marked=False)
        result.skipped += 1
        return
    user, company = batch.users[row.user_id], batch.companies[row.company_id]
    try:
        message = compose_reminder(company, user, batch.tokens[row.company_id], now, base_url,
                                   admins=None if user.is_admin else batch.admins[company.id])
    except UnsafeHeader as exc:
        ledger.finish(row.id, S.FAILED, now, user.email, f"unsafe address or name: {exc}", marked=False)
        result.failed += 1
        return
    fields = {"company_id": row.company_id, "user_id": row.user_id, "generation": row.generation,
              "local_date": row.local_date.isoformat(), "attempt": row.attempts + 1}
    gate = DataGate(row, user.email, batch.expect(row))
    _record(row.id, row.attempts, gate, send(message, before_data=gate), user.email, result, fields)
