"""The reminder ledger: claim a (company, user, local day) before SMTP, mark the moment DATA goes, record the answer.

A row moves claimed -> sending (marked just before DATA, by exactly one sender) -> sent | failed, back to claimed
(a definite refusal, to retry), or to uncertain when the mail server may have the message but its answer was never
recorded (docs/RELIABILITY.md, "The ambiguous window"). A row that never reached DATA stays claimed: skipped,
failed or retried from there.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..derived import LedgerDay
from ..extensions import db
from ..models import DeliveryStatus as S
from ..models import ReminderDelivery as R
from .plan import Due, History
from .record import HANDED_OVER, finish, lease, mark_data, release, sent, skip_many, status_of

# The send path's writes live in record.py; they are named here too, as the ledger's whole interface.
__all__ = ["HANDED_OVER", "LastReminder", "MAX_ATTEMPTS", "UNCERTAIN", "claim", "company_history", "finish",
           "history", "last_reminder", "lease", "mark_data", "orphans", "release", "resolve_uncertain", "sent",
           "skip_many", "status_of"]

MAX_ATTEMPTS = 8  # transient failures after this many tries are recorded as failed
UNCERTAIN = ("the worker stopped after handing the message to the mail server and before recording its answer, "
             "so it may have been delivered; not sent again")


@dataclass(frozen=True)
class LastReminder:
    """The most recent day reminders went out (or were tried)."""

    at: datetime
    sent: int        # counted as sent, uncertain ones included
    failed: int
    why: str | None
    uncertain: int = 0


def _insert():
    """INSERT … ON CONFLICT DO NOTHING for the database in use (SQLite or PostgreSQL)."""
    return (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(R)


def claim(dues: Iterable[Due], now: datetime) -> list[int]:
    """Insert a claimed row for each due reminder; returns the ids of the rows this call created."""
    values = [{"company_id": d.company_id, "user_id": d.user_id, "generation": d.generation,
               "local_date": d.local_date, "day_start": d.day_start, "status": S.CLAIMED.value, "attempts": 0,
               "claimed_at": now} for d in dues]
    if not values:
        return []
    # Rows go as parameters (executemany), not as one giant VALUES list: the statement compiles once and the
    # driver splits the rows under SQLite's and PostgreSQL's parameter limits, however many recipients a page has.
    stmt = (_insert().on_conflict_do_nothing(index_elements=["company_id", "user_id", "day_start"])
            .returning(R.id))
    ids = list(db.session.scalars(stmt, values))
    db.session.commit()
    return ids


def _history_query(company_ids: list[int], now: datetime):
    sent_at = func.max(case((R.status.in_(HANDED_OVER), R.data_at)))
    # Rows of the last three local dates cover every claim of the last 48 hours in any zone (UTC-12 to +14),
    # and keep the query on the (company_id, local_date) index.
    since = (now - timedelta(days=3)).date()
    return (select(func.max(R.claimed_at), sent_at)
            .where(R.company_id.in_(company_ids), R.local_date >= since))


def history(company_ids: list[int], now: datetime) -> dict[tuple[int, int], History]:
    """Per (company_id, user_id): the newest claim and the newest hand-over to the mail server, recent rows only."""
    if not company_ids:
        return {}
    rows = db.session.execute(_history_query(company_ids, now).add_columns(R.company_id, R.user_id)
                              .group_by(R.company_id, R.user_id))
    return {(cid, uid): History(claimed, sent) for claimed, sent, cid, uid in rows}


def company_history(company_id: int, now: datetime) -> History:
    """The same for a whole company (the page's "Next reminder"): its newest claim and newest hand-over of the last
    72 hours (every claim of the last 48 hours in any zone), each one entry of an index however many rows a day has."""
    since = now - timedelta(days=3)
    claimed = db.session.execute(select(R.claimed_at).where(R.company_id == company_id, R.claimed_at >= since)
                                 .order_by(R.claimed_at.desc()).limit(1)).scalar()
    sent = db.session.execute(select(R.data_at).where(R.company_id == company_id, R.data_at >= since,
                                                      R.status.in_(HANDED_OVER))
                              .order_by(R.data_at.desc()).limit(1)).scalar()
    return History(claimed, sent)


def orphans(now: datetime, limit: int = 1000) -> list[int]:
    """Claimed rows nobody has tried for a lease: their sender died before DATA (provably never handed over)."""
    stale = now - lease()
    rows = db.session.execute(
        select(R.id).where(R.status == S.CLAIMED.value, func.coalesce(R.sending_since, R.claimed_at) < stale)
        .order_by(R.id).limit(limit)
    )
    return [r[0] for r in rows]


def resolve_uncertain(now: datetime) -> list[tuple[int, int, str | None]]:
    """Rows still 'sending' (marked before DATA) a lease later: their sender died or could not record the answer.
    Mark them 'uncertain' (never re-sent; counted as sent for the day). Returns (row id, company id, recipient)."""
    stale = now - lease()
    rows = db.session.execute(select(R.id, R.company_id, R.recipient).where(
        R.status == S.SENDING.value, R.sending_since < stale)).all()
    if rows:
        db.session.execute(update(R).where(R.id.in_([r.id for r in rows]), R.status == S.SENDING.value,
                                           R.sending_since < stale)
                           .values(status=S.UNCERTAIN.value, finished_at=now, reason=UNCERTAIN))
    db.session.commit()
    return [tuple(r) for r in rows]


def last_reminder(company_id: int) -> LastReminder | None:
    """The latest local date with sent, uncertain or failed reminders, counted (one indexed row of ``ledger_day``,
    which triggers keep; no ledger rows are read)."""
    day = db.session.execute(
        select(LedgerDay).where(LedgerDay.company_id == company_id,
                                or_(LedgerDay.sent > 0, LedgerDay.failed > 0, LedgerDay.uncertain > 0))
        .order_by(LedgerDay.local_date.desc()).limit(1)).scalar_one_or_none()
    if day is None:
        return None
    return LastReminder(at=day.last_at, sent=day.sent + day.uncertain, failed=day.failed,
                        why=day.failure if day.failed else None, uncertain=day.uncertain)
