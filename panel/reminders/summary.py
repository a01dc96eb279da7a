"""The Sage page's reminder lines: "Last reminder: …, sent to N (M failed: why)" and "Next reminder: …"."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ..extensions import db
from ..models import Company, DeliveryStatus as S, ReminderDelivery as R, SageToken
from . import recipients
from .plan import CompanyPlan, local_date, next_reminder_at


@dataclass(frozen=True)
class LastReminder:
    """The most recent day reminders went out (or were tried)."""

    at: datetime
    sent: int
    failed: int
    why: str | None


@dataclass(frozen=True)
class NextReminder:
    """When the next reminder goes and to how many people."""

    at: datetime | None
    recipients: int


def last_reminder(company_id: int) -> LastReminder | None:
    """The latest local date with sent or failed reminders, counted."""
    day = db.session.execute(select(func.max(R.local_date)).where(
        R.company_id == company_id, R.status.in_([S.SENT.value, S.FAILED.value]))).scalar()
    if day is None:
        return None
    rows = db.session.execute(select(R.status, R.reason, R.finished_at).where(
        R.company_id == company_id, R.local_date == day, R.status.in_([S.SENT.value, S.FAILED.value]))).all()
    failures = [r.reason for r in rows if r.status == S.FAILED.value]
    return LastReminder(at=max(r.finished_at for r in rows if r.finished_at), sent=len(rows) - len(failures),
                        failed=len(failures), why=failures[0] if failures else None)


def next_reminder(company: Company, token: SageToken | None, now: datetime) -> NextReminder | None:
    """When the next reminder will go (None when Sage is not connected)."""
    if token is None:
        return None
    plan = CompanyPlan(company.id, company.timezone, company.reminder_hour, company.reminder_days,
                       token.generation, token.expires_at)
    today = local_date(now, company.timezone)
    sent_today = db.session.execute(select(func.count(R.id)).where(
        R.company_id == company.id, R.generation == token.generation, R.local_date == today)).scalar_one() > 0
    return NextReminder(next_reminder_at(now, plan, sent_today), recipients.count(company.id))
