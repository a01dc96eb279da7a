"""The reminder ledger: claim a (company, user, local day) before SMTP, mark the moment DATA goes, record the answer.

A row moves claimed -> sending (marked just before DATA, by exactly one sender) -> sent | failed, back to claimed
(a definite refusal, to retry), or to uncertain when the mail server may have the message but its answer was never
recorded (docs/RELIABILITY.md, "The ambiguous window"). A row that never reached DATA stays claimed: skipped,
failed or retried from there.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from flask import current_app
from sqlalchemy import case, exists, func, select, update
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


_OTHER = aliased(R, name="other")  # once: building an alias per message cost more than the statement itself


def mark_data(row_id: int, company_id: int, user_id: int, now: datetime, recipient: str) -> bool:
    """Just before DATA: claimed -> sending, ``data_at`` = now, one more try. False (send nothing) when the row is no
    longer claimed (another sender has it, or it was handled) or another reminder went to the person within MIN_GAP.

    One statement, so only one sender ever marks a row. On PostgreSQL the person's row is locked first, so two
    senders of two rows for one person (a timezone moved between claims) are serialized and the second sees the
    first's mark; SQLite runs one writer at a time, and one statement reads and writes under the same lock.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    recent = exists().where(_OTHER.company_id == company_id, _OTHER.user_id == user_id, _OTHER.id != row_id,
                            _OTHER.status.in_(HANDED_OVER), _OTHER.data_at > now - MIN_GAP)
    result = db.session.execute(
        update(R).where(R.id == row_id, R.status == S.CLAIMED.value, ~recent)
        .values(status=S.SENDING.value, data_at=now, sending_since=now, attempts=R.attempts + 1,
                recipient=recipient[:254]))
    db.session.commit()
    return result.rowcount == 1


def status_of(row_id: int) -> str | None:
    """The row's status as stored now."""
    return db.session.execute(select(R.status).where(R.id == row_id)).scalar_one_or_none()


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


def finish(row_id: int, status: S, now: datetime, recipient: str | None = None, reason: str | None = None, *,
           marked: bool = True, tried: bool = False) -> bool:
    """Record how a row ended — ``marked``: after DATA (from 'sending'; a late 'sent' also replaces an 'uncertain'
    the sweep gave it meanwhile), else before it (from 'claimed'; ``tried`` counts one more try). Retried until
    written, for up to the lease; False when it never got through."""
    if marked:
        states = [S.SENDING.value] + ([S.UNCERTAIN.value] if status is S.SENT else [])
    else:
        states = [S.CLAIMED.value]
    values = {"status": status.value, "finished_at": now, "reason": (reason or None) and reason[:500]}
    if recipient:
        values["recipient"] = recipient[:254]
    if tried:
        values["attempts"] = R.attempts + 1
    stmt = update(R).where(R.id == row_id, R.status.in_(states)).values(**values)
    return _written(stmt, f"reminder {row_id} as {status.value}")


def release(row_id: int, now: datetime, reason: str, *, marked: bool) -> None:
    """A transient failure; the row is claimed again, to be retried (RQ Retry, or the next sweep after the lease).
    ``marked``: the server refused the DATA (a definite 4xx), so the mark is undone; else a try that never reached
    DATA is counted."""
    if marked:
        stmt = (update(R).where(R.id == row_id, R.status == S.SENDING.value)
                .values(status=S.CLAIMED.value, data_at=None, sending_since=now, reason=reason[:500]))
    else:
        stmt = (update(R).where(R.id == row_id, R.status == S.CLAIMED.value)
                .values(attempts=R.attempts + 1, sending_since=now, reason=reason[:500]))
    db.session.execute(stmt)
    db.session.commit()


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
