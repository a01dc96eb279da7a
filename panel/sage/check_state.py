"""The stored state of the daily connection checks (``connection_check``): each company's slot in the day, which
checks are due, the outcome of the last one, and incidents (opened by a failure that stays, closed by a pass).

Checks are spread over the day: a company's slot is a fixed second of the UTC day derived from its id, so 100,000
companies make about 70 checks a minute, never a burst at midnight.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models import SageToken
from ..models_alerts import ConnectionCheck as C
from .check import Kind, Outcome

DAY = 86400
SPREAD = 2654435761          # Knuth's multiplicative hash: neighbouring ids land far apart in the day
MIN_SPACING = timedelta(hours=1)
LEASE = timedelta(minutes=15)       # a claimed check not recorded by then (dead worker) is handed out again
RETRY_AFTER = timedelta(minutes=5)  # after a transient or local failure
FAILING_EVERY = timedelta(hours=1)  # while broken: a recovery is noticed within the hour
TRANSIENT_LIMIT = 3                 # consecutive transient failures before they count as broken


@dataclass(frozen=True)
class CheckView:
    """What the screen shows about the check."""

    enabled: bool
    status: str | None
    checked_at: datetime | None
    ok_at: datetime | None
    failing_since: datetime | None
    reason: str | None
    generation: int | None


def slot_seconds(company_id: int) -> int:
    """The company's second of the UTC day."""
    return (company_id * SPREAD) % DAY


def next_slot(company_id: int, now: datetime) -> datetime:
    """The first of the company's daily slots at least MIN_SPACING after ``now``."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    at = midnight + timedelta(seconds=slot_seconds(company_id))
    while at < now + MIN_SPACING:
        at += timedelta(days=1)
    return at


def view(company_id: int) -> CheckView | None:
    """The company's check as stored (None before the first tick saw it)."""
    row = db.session.get(C, company_id, populate_existing=True)
    if row is None:
        return None
    return CheckView(bool(row.enabled), row.status, row.checked_at, row.ok_at, row.failing_since, row.reason,
                     row.generation)


def set_enabled(company_id: int, enabled: bool, now: datetime) -> bool:
    """Switch the company's daily check on or off; False when it already was."""
    _add_rows([company_id], now)
    row = db.session.execute(select(C).where(C.company_id == company_id).with_for_update()
                             .execution_options(populate_existing=True)).scalar_one()
    changed = bool(row.enabled) != enabled
    row.enabled = enabled
    db.session.commit()
    return changed


def _add_rows(company_ids: list[int], now: datetime) -> None:
    """Check rows for these companies, due at their next slot; a row another process added meanwhile is kept (two
    ticks, or two Check connection clicks, may add the same company at once)."""
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    db.session.execute(insert(C).on_conflict_do_nothing(index_elements=["company_id"]), [
        {"company_id": cid, "enabled": True, "next_at": next_slot(cid, now), "transient": 0, "incident": 0,
         "alerted": 0, "recovered": 0} for cid in company_ids])


def add_missing(now: datetime, limit: int = 20000) -> int:
    """Give companies with a token a check row, due at their next slot (``limit`` per call, one multi-row insert);
    returns how many were added."""
    missing = db.session.execute(
        select(SageToken.company_id).outerjoin(C, C.company_id == SageToken.company_id)
        .where(C.company_id.is_(None)).limit(limit)).scalars().all()
    if missing:
        _add_rows(missing, now)
    db.session.commit()
    return len(missing)


def recheck_renewed(now: datetime) -> None:
    """A failing company whose token was renewed since (a new Login Now) is checked at the next tick."""
    renewed = (select(SageToken.company_id).where(SageToken.company_id == C.company_id,
                                                  SageToken.generation != C.generation).exists())
    db.session.execute(update(C).where(C.status == "failing", C.next_at > now + LEASE, renewed)
                       .values(next_at=now).execution_options(synchronize_session=False))
    db.session.commit()


def claim_due(now: datetime, limit: int = 500) -> list[int]:
    """Companies whose check is due, each claimed for LEASE by one UPDATE … RETURNING: a row another tick claimed
    first no longer matches ``next_at <= now``, so every check has one checker."""
    due = (select(C.company_id).join(SageToken, SageToken.company_id == C.company_id)
           .where(C.enabled.is_(True), C.next_at <= now).order_by(C.next_at).limit(limit))
    claimed = db.session.execute(
        update(C).where(C.company_id.in_(due), C.next_at <= now).values(next_at=now + LEASE)
        .returning(C.company_id).execution_options(synchronize_session=False)).scalars().all()
    db.session.commit()
    return sorted(claimed)


def record(company_id: int, outcome: Outcome, generation: int | None, now: datetime) -> None:
    """Store a check's outcome; a failure that stays opens an incident, a pass closes it."""
    _add_rows([company_id], now)  # nothing when the row exists; never a duplicate key when two record at once
    row = db.session.execute(select(C).where(C.company_id == company_id).with_for_update()
                             .execution_options(populate_existing=True)).scalar_one()
    kind, reason = outcome.kind, outcome.reason
    if kind is Kind.TRANSIENT and (row.transient or 0) + 1 >= TRANSIENT_LIMIT:
        kind = Kind.BROKEN
        reason = f"{reason} (no answer in {TRANSIENT_LIMIT} checks in a row)"
    if kind is Kind.OK:
        row.status, row.ok_at, row.reason, row.failing_since, row.transient = "ok", now, None, None, 0
        row.next_at = next_slot(company_id, now)
    elif kind is Kind.BROKEN:
        if row.status != "failing":
            row.incident, row.failing_since = (row.incident or 0) + 1, now
        row.status, row.reason, row.transient = "failing", reason[:500], 0
        row.next_at = now + FAILING_EVERY
    else:
        row.transient = (row.transient or 0) + (kind is Kind.TRANSIENT)
        row.next_at = now + RETRY_AFTER
    if kind is not Kind.LOCAL:
        row.checked_at, row.generation = now, generation
    db.session.commit()


def pending_alerts(company_id: int | None = None, limit: int = 500) -> list[tuple[int, str, int]]:
    """(company, 'broken' | 'recovered', incident) whose messages have not been claimed yet."""
    query = select(C.company_id, C.status, C.incident, C.alerted).where(or_(
        and_(C.status == "failing", C.alerted < C.incident),
        and_(C.status == "ok", C.recovered < C.alerted)))
    if company_id is not None:
        query = query.where(C.company_id == company_id)
    rows = db.session.execute(query.limit(limit)).all()
    # A recovery answers the last incident that was alerted (one opened and closed unseen needs none).
    return [(cid, "broken", incident) if status == "failing" else (cid, "recovered", alerted)
            for cid, status, incident, alerted in rows]


def mark_alerted(company_id: int, kind: str, incident: int) -> bool:
    """Note that the messages of ``kind`` for ``incident`` were claimed (in the caller's transaction); False when
    the state moved on meanwhile (the caller then claims nothing)."""
    if kind == "broken":
        stmt = update(C).where(C.company_id == company_id, C.status == "failing", C.incident == incident,
                               C.alerted < incident).values(alerted=incident)
    else:
        stmt = update(C).where(C.company_id == company_id, C.status == "ok", C.alerted == incident,
                               C.recovered < incident).values(recovered=incident)
    return db.session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1
