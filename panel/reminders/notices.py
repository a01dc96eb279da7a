"""The ledger of channel messages and connection alerts (``notice_delivery``), with the email ledger's promises: a
row is claimed (unique target, kind, key) before anything is sent, marked ``sending`` by exactly one sender just
before the message leaves, then recorded. A sender that dies before the mark leaves a claimed row that is sent
again after the lease; one that dies after it leaves a row that becomes ``uncertain`` and is never sent again.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import case, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import DeliveryStatus as S
from ..models_alerts import NoticeDelivery as N
from .ledger import HANDED_OVER, UNCERTAIN, lease
from .plan import MIN_GAP, History

MAX_ATTEMPTS = 8  # a message that failed this many times is recorded as failed


def channel_target(channel_id: int) -> str:
    """The ledger target of a channel."""
    return f"channel:{channel_id}"


def user_target(user_id: int) -> str:
    """The ledger target of a person (an email)."""
    return f"user:{user_id}"


def claim(rows: Iterable[dict], now: datetime, commit: bool = True) -> list[int]:
    """Insert claimed rows (company_id, target, kind, key, optional channel_id/user_id/generation/day_start);
    returns the ids of those this call created (a row already there is someone else's). ``commit=False`` leaves
    them in the caller's transaction."""
    base = {"channel_id": None, "user_id": None, "generation": None, "day_start": None}
    values = [{**base, **r, "status": S.CLAIMED.value, "attempts": 0, "claimed_at": now} for r in rows]
    if not values:
        return []
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(N).on_conflict_do_nothing(index_elements=["target", "kind", "key"]).returning(N.id)
    ids = list(db.session.scalars(stmt, values))
    if commit:
        db.session.commit()
    return ids


def history(company_ids: list[int], now: datetime) -> dict[tuple[int, int], History]:
    """Per (company_id, channel_id): the newest channel reminder claimed and handed over, from recent rows."""
    if not company_ids:
        return {}
    handed = func.max(case((N.status.in_(HANDED_OVER), N.handed_at)))
    rows = db.session.execute(
        select(N.company_id, N.channel_id, func.max(N.claimed_at), handed)
        .where(N.company_id.in_(company_ids), N.kind == "reminder", N.channel_id.is_not(None),
               N.claimed_at >= now - 2 * MIN_GAP - lease())
        .group_by(N.company_id, N.channel_id))
    return {(cid, ch): History(claimed, sent) for cid, ch, claimed, sent in rows}


_OTHER = aliased(N, name="other")


def mark(row_id: int, now: datetime) -> bool:
    """Just before sending: claimed -> sending (one more try). False when the row is no longer claimed, or (a
    reminder) another reminder went to that channel within the last 20 hours. One statement: one sender wins."""
    row = db.session.get(N, row_id, populate_existing=True)
    if row is None:
        return False
    recent = exists().where(_OTHER.target == row.target, _OTHER.kind == "reminder", _OTHER.id != row_id,
                            _OTHER.status.in_(HANDED_OVER), _OTHER.handed_at > now - MIN_GAP)
    stmt = update(N).where(N.id == row_id, N.status == S.CLAIMED.value)
    if row.kind == "reminder":
        stmt = stmt.where(~recent)
    done = db.session.execute(stmt.values(status=S.SENDING.value, handed_at=now, sending_since=now,
                                          attempts=N.attempts + 1).execution_options(synchronize_session=False))
    db.session.commit()
    return done.rowcount == 1


def finish(row_id: int, status: S, now: datetime, reason: str | None = None, *, marked: bool = True) -> None:
    """Record how a row ended: from 'sending' (``marked``) or from 'claimed' (it never left)."""
    state = S.SENDING.value if marked else S.CLAIMED.value
    db.session.execute(update(N).where(N.id == row_id, N.status == state)
                       .values(status=status.value, finished_at=now, reason=(reason or None) and reason[:500])
                       .execution_options(synchronize_session=False))
    db.session.commit()


def release(row_id: int, now: datetime, reason: str) -> None:
    """The service said no, or could not be reached: nothing arrived, so the row is claimed again, to retry."""
    db.session.execute(update(N).where(N.id == row_id, N.status == S.SENDING.value)
                       .values(status=S.CLAIMED.value, handed_at=None, sending_since=now, reason=reason[:500])
                       .execution_options(synchronize_session=False))
    db.session.commit()


def postpone(row_id: int, now: datetime, reason: str) -> None:
    """A try that never reached the mark (e.g. the mail server could not be reached): counted, retried later."""
    db.session.execute(update(N).where(N.id == row_id, N.status == S.CLAIMED.value)
                       .values(attempts=N.attempts + 1, sending_since=now, reason=reason[:500])
                       .execution_options(synchronize_session=False))
    db.session.commit()


def status_of(row_id: int) -> str | None:
    """The row's status as stored now."""
    return db.session.scalar(select(N.status).where(N.id == row_id))


def orphans(now: datetime, limit: int = 1000) -> list[int]:
    """Claimed rows nobody tried for a lease (their sender died before sending, or a retry is due)."""
    stale = now - lease()
    return list(db.session.scalars(
        select(N.id).where(N.status == S.CLAIMED.value, func.coalesce(N.sending_since, N.claimed_at) < stale)
        .order_by(N.id).limit(limit)))


def resolve_uncertain(now: datetime) -> int:
    """Rows still 'sending' a lease later: their sender died after the message left. Never sent again."""
    stale = now - lease()
    done = db.session.execute(update(N).where(N.status == S.SENDING.value, N.sending_since < stale)
                              .values(status=S.UNCERTAIN.value, finished_at=now, reason=UNCERTAIN)
                              .execution_options(synchronize_session=False))
    db.session.commit()
    return done.rowcount
