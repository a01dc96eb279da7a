"""The reminder ledger: claim a (company, user, generation, local date) before SMTP, mark it after."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable

from flask import current_app
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..derived import LedgerDay
from ..extensions import db
from ..models import DeliveryStatus as S
from ..models import ReminderDelivery as R
from .plan import Due

MAX_ATTEMPTS = 8               # transient failures after this many tries are recorded as failed


@dataclass(frozen=True)
class LastReminder:
    """The most recent day reminders went out (or were tried)."""

    at: datetime
    sent: int
    failed: int
    why: str | None


def lease() -> timedelta:
    """How long a row may stay 'sending' (or untouched 'claimed') before it counts as abandoned."""
    return timedelta(seconds=current_app.config["PANEL_REMINDER_LEASE_SECONDS"])


def _insert():
    """INSERT … ON CONFLICT DO NOTHING for the database in use (SQLite or PostgreSQL)."""
    return (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(R)


def claim(dues: Iterable[Due], now: datetime) -> list[int]:
    """Insert a claimed row for each due reminder; returns the ids of the rows this call created."""
    values = [{"company_id": d.company_id, "user_id": d.user_id, "generation": d.generation,
               "local_date": d.local_date, "status": S.CLAIMED.value, "attempts": 0, "claimed_at": now}
              for d in dues]
    if not values:
        return []
    # Rows go as parameters (executemany), not as one giant VALUES list: the statement compiles once and the
    # driver splits the rows under SQLite's and PostgreSQL's parameter limits, however many recipients a page has.
    stmt = (_insert()
            .on_conflict_do_nothing(index_elements=["company_id", "user_id", "generation", "local_date"])
            .returning(R.id))
    ids = list(db.session.scalars(stmt, values))
    db.session.commit()
    return ids


def sent_keys(company_ids: list[int], dates: set) -> set[tuple]:
    """Ledger keys already present (any status) for these companies on these local dates."""
    if not company_ids:
        return set()
    rows = db.session.execute(
        select(R.company_id, R.user_id, R.generation, R.local_date)
        .where(R.company_id.in_(company_ids), R.local_date.in_(dates))
    )
    return {tuple(r) for r in rows}


def take(row_id: int, now: datetime) -> bool:
    """Move a claimed row (or one whose sender died) to 'sending'; False when another worker has it."""
    result = db.session.execute(
        update(R).where(R.id == row_id, or_(R.status == S.CLAIMED.value,
                                            and_(R.status == S.SENDING.value, R.sending_since < now - lease())))
        .values(status=S.SENDING.value, sending_since=now, attempts=R.attempts + 1)
    )
    db.session.commit()
    return result.rowcount == 1


def finish(row_id: int, status: S, now: datetime, recipient: str | None = None, reason: str | None = None) -> None:
    """Record the final state of a row: sent, failed or skipped."""
    db.session.execute(update(R).where(R.id == row_id).values(
        status=status.value, finished_at=now, recipient=recipient, reason=(reason or None) and reason[:500]))
    db.session.commit()


def release(row_id: int, reason: str) -> None:
    """A transient failure: back to claimed, to be tried again (RQ Retry or the next sweep)."""
    db.session.execute(update(R).where(R.id == row_id, R.status == S.SENDING.value)
                       .values(status=S.CLAIMED.value, reason=reason[:500]))
    db.session.commit()


def orphans(now: datetime, limit: int = 1000) -> list[int]:
    """Rows nobody is working on: claimed with no attempt for a lease, or 'sending' past the lease."""
    stale = now - lease()
    rows = db.session.execute(
        select(R.id).where(or_(
            and_(R.status == S.CLAIMED.value, func.coalesce(R.sending_since, R.claimed_at) < stale),
            and_(R.status == S.SENDING.value, R.sending_since < stale),
        )).order_by(R.id).limit(limit)
    )
    return [r[0] for r in rows]


def last_reminder(company_id: int) -> LastReminder | None:
    """The latest local date with sent or failed reminders, counted (one indexed row of ``ledger_day``, which
    triggers keep; no ledger rows are read)."""
    day = db.session.execute(
        select(LedgerDay).where(LedgerDay.company_id == company_id, or_(LedgerDay.sent > 0, LedgerDay.failed > 0))
        .order_by(LedgerDay.local_date.desc()).limit(1)).scalar_one_or_none()
    if day is None:
        return None
    return LastReminder(at=day.last_at, sent=day.sent, failed=day.failed, why=day.failure if day.failed else None)


def any_on(company_id: int, generation: int, day: date) -> bool:
    """True when a reminder of this token generation is in the ledger for local date ``day`` (any status)."""
    return db.session.execute(select(R.id).where(
        R.company_id == company_id, R.generation == generation, R.local_date == day).limit(1)).first() is not None
