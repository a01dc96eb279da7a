"""The scheduler's heartbeat, kept in the database — the one part that is not what fails when Redis does.

Each reminder sweep run from the schedule (``rq cron`` → a worker) records when it finished. When none has
finished for two sweep intervals, reminders are not being sent: ``/readyz`` fails its ``scheduler`` check and the
Sage page tells admins. Nothing here needs Redis, so the warning shows while Redis is down too.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db
from .models import Heartbeat

SWEEP = "reminder-sweep"
STALE_AFTER = 2  # sweep intervals without a sweep before the scheduler counts as stopped


@dataclass(frozen=True)
class Pulse:
    """The last sweep (None: never), whether that is longer ago than two intervals, and when it will be."""

    last: datetime | None
    stale: bool
    stale_at: datetime | None = None  # the instant the pulse turns stale if no sweep runs (None: never swept)


def beat(name: str, at: datetime) -> None:
    """Record that ``name`` completed at ``at`` (one row per name; never moves back; committed)."""
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(Heartbeat).values(name=name, at=at)
    db.session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"at": stmt.excluded.at},
                                                  where=Heartbeat.at < stmt.excluded.at))
    db.session.commit()


def sweep_pulse(now: datetime, interval_minutes: float) -> Pulse:
    """The reminder sweep's pulse at ``now``, with sweeps due every ``interval_minutes``."""
    last = db.session.execute(select(Heartbeat.at).where(Heartbeat.name == SWEEP)).scalar_one_or_none()
    stale_at = None if last is None else last + timedelta(minutes=interval_minutes * STALE_AFTER)
    return Pulse(last, stale_at is None or now > stale_at, stale_at)
