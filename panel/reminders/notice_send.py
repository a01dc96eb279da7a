"""Send claimed rows of the notice ledger: token reminders to channels, and connection alerts to channels and by
email. Each row is re-checked, marked just before its message leaves (one sender wins), sent, and recorded:
sent; uncertain (it may have arrived: never again); refused or unreachable (nothing arrived: claimed again and
retried after the lease, up to ``MAX_ATTEMPTS``); failed; or skipped.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app

from .. import clock, events
from ..extensions import db
from ..models import Company, User
from ..models import DeliveryStatus as S
from ..models_alerts import NoticeDelivery, NotifyChannel
from ..sage import check_state, store
from . import alerts, channel_send, channels, delivery, notices
from .delivery import NotSent, Outcome
from .message import UnsafeHeader
from .notifier import Sent


@dataclass
class NoticeResult:
    """Counts of one batch."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: int = 0
    uncertain: int = 0


def _skip(row_id: int, reason: str, result: NoticeResult) -> None:
    notices.finish(row_id, S.SKIPPED, clock.now(), reason, marked=False)
    result.skipped += 1


def _failed_or_retry(row_id: int, tries: int, reason: str, result: NoticeResult, fields: dict) -> None:
    """A refusal: retried after the lease, unless this was the last try."""
    if tries >= notices.MAX_ATTEMPTS:
        notices.finish(row_id, S.FAILED, clock.now(), reason)
        result.failed += 1
        events.emit(events.CHANNEL_FAILED, reason=reason, level=logging.WARNING, **fields)
    else:
        notices.release(row_id, clock.now(), reason)
        result.retry += 1


def _to_channel(row: NoticeDelivery, company: Company, result: NoticeResult) -> None:
    now, row_id, tries = clock.now(), row.id, row.attempts + 1
    base = current_app.config["PANEL_BASE_URL"].rstrip("/")
    channel = db.session.get(NotifyChannel, row.channel_id)
    if channel is None:
        return _skip(row_id, "the channel was removed", result)
    if row.kind == "reminder":
        why = channel_send.why_not(row, now)
        if why:
            return _skip(row_id, why, result)
        title, body = channel_send.text(company, store.current(company.id), now, base)
    else:
        title, body = alerts.channel_text(company, row.kind, check_state.view(company.id), base)
    fields = {"company_id": row.company_id, "channel_id": channel.id, "service": channel.service, "kind": row.kind}
    if not notices.mark(row_id, now):
        if notices.status_of(row_id) == S.CLAIMED.value:
            _skip(row_id, "another reminder went to this channel less than 20 hours ago", result)
        return None
    how, reason = channels.deliver(channel, title, body)
    if how is Sent.SENT:
        notices.finish(row_id, S.SENT, clock.now())
        result.sent += 1
        events.emit(events.CHANNEL_SENT, **fields)
    elif how is Sent.UNCERTAIN:
        notices.finish(row_id, S.UNCERTAIN, clock.now(), reason)
        result.uncertain += 1
        events.emit(events.CHANNEL_FAILED, reason=reason, uncertain=True, level=logging.WARNING, **fields)
    else:
        _failed_or_retry(row_id, tries, reason, result, fields)
    return None


class _Gate:
    """Marks the alert row just before DATA, or stops the message."""

    def __init__(self, row_id: int):
        self.row_id, self.passed = row_id, False

    def __call__(self) -> None:
        if not notices.mark(self.row_id, clock.now()):
            raise NotSent("another sender has it")
        self.passed = True


def _by_email(row: NoticeDelivery, company: Company, send, result: NoticeResult) -> None:
    now, row_id, tries = clock.now(), row.id, row.attempts + 1
    user = db.session.get(User, row.user_id, populate_existing=True)
    if user is None or not user.active or not user.notify_sage_token or user.company_id != company.id:
        return _skip(row_id, "recipient switched reminders off or is inactive", result)
    try:
        message = alerts.compose_email(company, user, row.kind, int(row.key), check_state.view(company.id), now)
    except UnsafeHeader as exc:
        notices.finish(row_id, S.FAILED, now, f"unsafe address or name: {exc}", marked=False)
        result.failed += 1
        return None
    gate = _Gate(row_id)
    outcome = send(message, before_data=gate)
    fields = {"company_id": company.id, "user_id": user.id, "kind": row.kind}
    if outcome.sent:
        notices.finish(row_id, S.SENT, clock.now())
        result.sent += 1
    elif not gate.passed:
        if notices.status_of(row_id) == S.CLAIMED.value:  # the connection failed before the mark: retry later
            notices.postpone(row_id, clock.now(), outcome.reason)
            result.retry += 1
    elif outcome.code is None and outcome.outcome is Outcome.TRANSIENT:
        notices.finish(row_id, S.UNCERTAIN, clock.now(), f"the connection broke during DATA: {outcome.reason}")
        result.uncertain += 1
    elif outcome.outcome is Outcome.PERMANENT:
        notices.finish(row_id, S.FAILED, clock.now(), outcome.reason)
        result.failed += 1
    else:
        _failed_or_retry(row_id, tries, outcome.reason, result, fields)
    return None


def send(ids: list[int]) -> NoticeResult:
    """Send the messages of notice rows ``ids`` (one SMTP connection for the emails among them)."""
    result = NoticeResult()
    with delivery.open_sender() as send_mail:
        for row_id in ids:
            row = db.session.get(NoticeDelivery, row_id, populate_existing=True)
            if row is None or row.status != S.CLAIMED.value:
                continue
            if row.attempts >= notices.MAX_ATTEMPTS:
                notices.finish(row_id, S.FAILED, clock.now(), row.reason or "too many tries", marked=False)
                result.failed += 1
                continue
            company = db.session.get(Company, row.company_id)
            if row.channel_id is not None:
                _to_channel(row, company, result)
            else:
                _by_email(row, company, send_mail, result)
    return result
