"""Failed sign-in throttling per account and per client address, stored in the database."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import LoginThrottle


def account_key(email: str) -> str:
    """Throttle key for an account (whether or not it exists, so lockouts reveal nothing)."""
    return "acct:" + email[:254]


def address_key(address: str | None) -> str:
    """Throttle key for a client address."""
    return "addr:" + (address or "unknown")[:64]


def locked_minutes(keys: list[str], now: datetime) -> int:
    """Minutes (rounded up) until every key is unlocked; 0 when none is locked."""
    rows = db.session.execute(select(LoginThrottle).where(LoginThrottle.key.in_(keys))).scalars()
    remaining = [(r.locked_until - now).total_seconds() for r in rows if r.locked_until and r.locked_until > now]
    return math.ceil(max(remaining) / 60) if remaining else 0


def record_failure(key: str, limit: int, lock_minutes: int, now: datetime) -> None:
    """Count one failure for ``key``; the ``limit``-th failure within the window locks it."""
    window = timedelta(minutes=lock_minutes)
    for _attempt in range(3):
        row = db.session.get(LoginThrottle, key, with_for_update=True)
        if row is None:
            row = LoginThrottle(key=key, failures=0, window_start=now)
            db.session.add(row)
        elif now - row.window_start > window and not (row.locked_until and row.locked_until > now):
            row.failures, row.window_start, row.locked_until = 0, now, None
        row.failures += 1
        if row.failures >= limit:
            row.locked_until = now + window
        try:
            db.session.commit()
            return
        except IntegrityError:  # another request created the row first: count on it
            db.session.rollback()


def reset(key: str) -> None:
    """Forget the failures of ``key`` (after a successful sign-in)."""
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
    db.session.commit()
