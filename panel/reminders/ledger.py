"""The reminder ledger: claim a (company, user, local day) before SMTP, mark the moment DATA goes, record the answer.

A row moves claimed -> sending (one sender, fenced by its attempt number) -> sent | failed | skipped, or to
uncertain when the mail server may have received the message but its answer was never recorded (see
docs/RELIABILITY.md, "The ambiguous window").
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from flask import current_app
from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import DeliveryStatus as S
from ..models import ReminderDelivery as R
from ..models import User
from .plan import MIN_GAP, Due, History

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # transient failures after this many tries are recorded as failed
HANDED_OVER = (S.SENDING.value, S.SENT.value, S.UNCERTAIN.value)  # with data_at set: DATA went to the server
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


def lease() -> timedelta:
    """How long a row may stay 'sending' (or untouched 'claimed') before it counts as abandoned."""
    return timedelta(seconds=current_app.config["PANEL_REMINDER_LEASE_SECONDS"])


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
    """The same for a whole company (the page's "Next reminder")."""
    claimed, sent = db.session.execute(_history_query([company_id], now)).one()
    return History(claimed, sent)


def take(row_id: int, now: datetime) -> int | None:
    """Move a claimed row (or one whose sender died before DATA) to 'sending'; returns the attempt number that
    fences every later write of this sender, or None when the row is not available."""
    attempt = db.session.execute(
        update(R).where(R.id == row_id, or_(
            R.status == S.CLAIMED.value,
            and_(R.status == S.SENDING.value, R.data_at.is_(None), R.sending_since < now - lease())))
        .values(status=S.SENDING.value, sending_since=now, attempts=R.attempts + 1, data_at=None)
        .returning(R.attempts)
    ).scalar_one_or_none()
    db.session.commit()
    return attempt


def mark_data(row_id: int, attempt: int, now: datetime, recipient: str) -> bool:
    """Record, just before DATA, that this message is being handed over; False (send nothing) when this sender no
    longer holds the row or another reminder went to the person within MIN_GAP.

    One transaction; on PostgreSQL the person's row is locked first, so two senders of two rows for one person
    (a timezone moved between claims) are serialized and the second sees the first's hand-over.
    """
    company_id, user_id = db.session.execute(select(R.company_id, R.user_id).where(R.id == row_id)).one()
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    other = aliased(R)
    recent = exists().where(other.company_id == company_id, other.user_id == user_id, other.id != row_id,
                            other.status.in_(HANDED_OVER), other.data_at > now - MIN_GAP)
    result = db.session.execute(
        update(R).where(R.id == row_id, R.attempts == attempt, R.status == S.SENDING.value, ~recent)
        .values(data_at=now, recipient=recipient[:254]))
    db.session.commit()
    return result.rowcount == 1


def holds(row_id: int, attempt: int) -> bool:
    """True while this sender (``attempt``) still holds the row."""
    return db.session.execute(select(R.id).where(R.id == row_id, R.attempts == attempt,
                                                 R.status == S.SENDING.value)).first() is not None


def _written(stmt, what: str) -> bool:
    """Execute and commit ``stmt``, trying again with backoff while the database refuses (locked, busy, connection
    lost, read-only, full), for up to the lease. False when it never got through."""
    deadline = time.monotonic() + lease().total_seconds()
    pause = 0.1
    while True:
        try:
            db.session.execute(stmt)
            db.session.commit()
            return True
        except (IntegrityError, ProgrammingError, DataError):
            raise  # a bug, not a fault of the moment
        except DBAPIError as exc:
            db.session.rollback()
            if time.monotonic() + pause >= deadline:
                log.error("could not record %s for %s s (%s); the row stays 'sending' and becomes 'uncertain' "
                          "after the lease", what, int(lease().total_seconds()), getattr(exc, "orig", exc))
                return False
            log.warning("could not record %s yet (%s); trying again in %.1f s", what, getattr(exc, "orig", exc), pause)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def finish(row_id: int, attempt: int, status: S, now: datetime, recipient: str | None = None,
           reason: str | None = None) -> bool:
    """Record how this sender's row ended (sent, failed, skipped, uncertain); retried until it is written
    (bounded by the lease). A late 'sent' also replaces an 'uncertain' the sweep gave the row meanwhile."""
    states = [S.SENDING.value] + ([S.UNCERTAIN.value] if status is S.SENT else [])
    values = {"status": status.value, "finished_at": now, "reason": (reason or None) and reason[:500]}
    if recipient:
        values["recipient"] = recipient[:254]
    stmt = update(R).where(R.id == row_id, R.attempts == attempt, R.status.in_(states)).values(**values)
    return _written(stmt, f"reminder {row_id} as {status.value}")


def release(row_id: int, attempt: int, reason: str) -> None:
    """A transient failure before the server took the message: back to claimed, to be tried again."""
    db.session.execute(update(R).where(R.id == row_id, R.attempts == attempt, R.status == S.SENDING.value)
                       .values(status=S.CLAIMED.value, data_at=None, reason=reason[:500]))
    db.session.commit()


def orphans(now: datetime, limit: int = 1000) -> list[int]:
    """Rows nobody is working on that may be sent again: claimed with no attempt for a lease, or 'sending' past
    the lease without having reached DATA (provably never handed to the mail server)."""
    stale = now - lease()
    rows = db.session.execute(
        select(R.id).where(or_(
            and_(R.status == S.CLAIMED.value, func.coalesce(R.sending_since, R.claimed_at) < stale),
            and_(R.status == S.SENDING.value, R.data_at.is_(None), R.sending_since < stale),
        )).order_by(R.id).limit(limit)
    )
    return [r[0] for r in rows]


def resolve_uncertain(now: datetime) -> list[tuple[int, int, str | None]]:
    """Rows still 'sending' past the lease after DATA went: mark them 'uncertain' (never re-sent; counted as
    sent for the day). Returns (row id, company id, recipient) of each."""
    stale = now - lease()
    rows = db.session.execute(select(R.id, R.company_id, R.recipient).where(
        R.status == S.SENDING.value, R.data_at.is_not(None), R.sending_since < stale)).all()
    if rows:
        db.session.execute(update(R).where(R.id.in_([r.id for r in rows]), R.status == S.SENDING.value,
                                           R.sending_since < stale)
                           .values(status=S.UNCERTAIN.value, finished_at=now, reason=UNCERTAIN))
    db.session.commit()
    return [tuple(r) for r in rows]


def last_reminder(company_id: int) -> LastReminder | None:
    """The latest local date with sent, uncertain or failed reminders, counted."""
    done = [S.SENT.value, S.FAILED.value, S.UNCERTAIN.value]
    day = db.session.execute(select(func.max(R.local_date)).where(
        R.company_id == company_id, R.status.in_(done))).scalar()
    if day is None:
        return None
    rows = db.session.execute(select(R.status, R.reason, R.finished_at).where(
        R.company_id == company_id, R.local_date == day, R.status.in_(done))).all()
    failures = [r.reason for r in rows if r.status == S.FAILED.value]
    uncertain = sum(r.status == S.UNCERTAIN.value for r in rows)
    return LastReminder(at=max(r.finished_at for r in rows if r.finished_at), sent=len(rows) - len(failures),
                        failed=len(failures), why=failures[0] if failures else None, uncertain=uncertain)
