"""The reminder sweep: find whose reminders are due, claim them in the ledger, then send each batch.

Sending (``sending.py``) re-checks every reminder just before it goes (one SMTP connection per batch) and marks the
ledger. The sweep also resolves rows whose sender died: re-sent when they never reached DATA, else 'uncertain'.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from rq import Retry
from sqlalchemy import and_, or_, select

from .. import events
from ..extensions import db
from ..jobs import enqueue
from ..localtime import plural
from ..models import Company, SageToken, User
from . import channel_send, ledger, notice_send
from .plan import CompanyPlan, company_is_due, due_reminders
from .sending import BatchResult, TransientDeliveryError, send_claimed

COMPANY_BATCH = 500  # companies read per query; the query only ever returns companies whose window is open
MAIL_BATCH = 50      # reminders per send job (one SMTP connection each)
RETRY_INTERVALS = [30, 60, 120, 300, 600, 900]  # seconds between retries of a batch with transient failures

SEND_JOB = "panel.reminders.schedule.send_batch"
NOTICE_JOB = "panel.reminders.schedule.send_notices"  # channel messages (issue 15): their own ledger and jobs


@dataclass
class SweepResult:
    """What one sweep did."""

    companies_due: int = 0
    claimed: int = 0
    batches: list[list[int]] = field(default_factory=list)
    recovered: int = 0
    uncertain: int = 0


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
        dues = due_reminders(now, plans, _recipients(ids), ledger.history(ids, now))
        claimed.extend(ledger.claim(dues, now))
    result.claimed = len(claimed)
    for row_id, company_id, recipient in ledger.resolve_uncertain(now):
        events.emit(events.REMINDER_UNCERTAIN, company_id=company_id, row=row_id, reason=ledger.UNCERTAIN,
                    level=logging.WARNING)
        result.uncertain += 1
    fresh = set(claimed)
    orphaned = [i for i in ledger.orphans(now) if i not in fresh]
    result.recovered = len(orphaned)
    todo = claimed + orphaned
    result.batches = [todo[i:i + MAIL_BATCH] for i in range(0, len(todo), MAIL_BATCH)]
    return result


def run(now: datetime, inline: bool = False) -> dict:
    """Claim what is due and send it: through the queue (one job per batch, RQ Retry), or here when ``inline``."""
    result = find_and_claim(now)
    summary = {"companies_due": result.companies_due, "claimed": result.claimed, "recovered": result.recovered,
               "batches": len(result.batches), "sent": 0, "failed": 0, "skipped": 0, "retry": 0, "uncertain": 0}
    for batch in result.batches:
        if not inline:
            enqueue(SEND_JOB, batch, retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                    job_timeout=600, description=f"send {plural(len(batch), 'Sage token reminder')}")
            continue
        try:
            done = send_claimed(batch)
        except TransientDeliveryError as exc:
            done = exc.result
        for key in ("sent", "failed", "skipped", "retry", "uncertain"):
            summary[key] += getattr(done, key)
    summary["uncertain"] += result.uncertain
    _channels(now, inline, summary)
    return summary


def _channels(now: datetime, inline: bool, summary: dict) -> None:
    """Next to the email batches: claim the channel reminders that are due and send them (``channel_send.py``)."""
    batches = channel_send.batches(now)
    if batches:  # the keys appear only when channels had something to send
        summary["channel_batches"] = len(batches)
    for batch in batches:
        if not inline:
            enqueue(NOTICE_JOB, batch, job_timeout=900, description=f"send {plural(len(batch), 'channel message')}")
            continue
        done = notice_send.send(batch)
        summary["channel_sent"] = summary.get("channel_sent", 0) + done.sent


__all__ = ["BatchResult", "SweepResult", "TransientDeliveryError", "find_and_claim", "run", "send_claimed"]
