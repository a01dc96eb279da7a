"""Sign-in throttling that slows an attacker but cannot lock the owner out; counters live in the database.

Two counters, both claimed in one transaction BEFORE the password is checked, so parallel guesses cannot all slip
past a check-then-count race (each claim is an atomic conditional UPDATE; a refused claim is rolled back):

- per account + client address: the first PANEL_LOGIN_MAX_FAILURES attempts go through; after that each attempt
  must wait 1 s, 2 s, 4 s, … up to PANEL_LOGIN_LOCK_MINUTES before the next. Nobody at another address — the
  account's owner included — is slowed by it. Forgotten after PANEL_LOGIN_LOCK_MINUTES without attempts.
- per client address: at most PANEL_LOGIN_MAX_FAILURES_PER_ADDRESS attempts in a PANEL_LOGIN_LOCK_MINUTES window,
  whatever the account; then that address (only) waits for the window to end.

A successful sign-in gives its claim back to both counters (so only failures count: an office behind one address is
never slowed by its own sign-ins, and a right password in a burst of guesses frees no extra wrong guesses).
Nothing here needs Redis.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, null, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models import LoginThrottle as T


@dataclass(frozen=True)
class Limits:
    """The throttle's settings (from PANEL_LOGIN_*)."""

    free: int          # attempts per account+address before delays start
    per_address: int   # attempts per address per window
    window: timedelta  # the address window, the quiet period that forgets a pair, and the longest delay


def limits(cfg) -> Limits:
    """The limits configured for this app."""
    return Limits(cfg["PANEL_LOGIN_MAX_FAILURES"], cfg["PANEL_LOGIN_MAX_FAILURES_PER_ADDRESS"],
                  timedelta(minutes=cfg["PANEL_LOGIN_LOCK_MINUTES"]))


def pair_key(email: str, address: str | None) -> str:
    """Key of one account (existing or not, so throttling reveals nothing) tried from one client address."""
    digest = hashlib.sha256(f"{email[:254]}\n{address or 'unknown'}".encode()).hexdigest()
    return "pair:" + digest


def address_key(address: str | None) -> str:
    """Key of one client address."""
    return "addr:" + (address or "unknown")[:64]


def delay(attempts: int, lim: Limits) -> timedelta | None:
    """How long to wait after the ``attempts``-th attempt of one account+address (None: no wait yet)."""
    if attempts < lim.free:
        return None
    exponent = min(attempts - lim.free, 30)  # 2**30 s is far past any cap; keeps the number small
    return min(timedelta(seconds=2 ** exponent), lim.window)


def _insert():
    return (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(T)


def claim(pair: str, address: str, now: datetime, lim: Limits) -> int:
    """Claim one attempt on both counters; 0 when the password may be checked, else whole seconds to wait."""
    cutoff = now - lim.window
    db.session.execute(_insert().on_conflict_do_nothing(index_elements=["key"]),
                       [{"key": k, "failures": 0, "window_start": now} for k in (pair, address)])
    # A pair is forgotten after a quiet window: since its last delay ended, or since it started if never delayed.
    pair_fresh = or_(and_(T.locked_until.is_(None), T.window_start <= cutoff), T.locked_until <= cutoff)
    pair_open = or_(T.locked_until.is_(None), T.locked_until <= now)
    address_fresh = T.window_start <= cutoff
    address_open = or_(address_fresh, T.failures < lim.per_address)
    counts = {}
    for key, fresh, is_open in ((pair, pair_fresh, pair_open), (address, address_fresh, address_open)):
        # One atomic conditional UPDATE: concurrent claims queue on the row (PostgreSQL) or the database's write
        # lock (SQLite), and each sees the count the one before it left.
        counts[key] = db.session.execute(
            update(T).where(T.key == key, is_open)
            .values(failures=case((fresh, 1), else_=T.failures + 1),
                    window_start=case((fresh, now), else_=T.window_start),
                    locked_until=case((fresh, null()), else_=T.locked_until))
            .returning(T.failures).execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if counts[key] is None:
            wait = _wait(key, now, lim)
            db.session.rollback()  # the other counter's claim too: this attempt is not checked
            return wait
    wait_after = delay(counts[pair], lim)
    if wait_after is not None:
        db.session.execute(update(T).where(T.key == pair).values(locked_until=now + wait_after))
    db.session.commit()
    return 0


def _wait(key: str, now: datetime, lim: Limits) -> int:
    row = db.session.execute(select(T).where(T.key == key)).scalar_one()
    if key.startswith("pair:"):
        until = row.locked_until
    else:
        until = row.window_start + lim.window
    return max(1, math.ceil((until - now).total_seconds()))


def succeeded(pair: str, address: str) -> None:
    """After a successful sign-in: give the attempt back to both counters (only failures keep counting)."""
    db.session.execute(update(T).where(T.key == pair, T.failures > 0)
                       .values(failures=T.failures - 1, locked_until=null()))
    db.session.execute(update(T).where(T.key == address, T.failures > 0).values(failures=T.failures - 1))
    db.session.commit()


def try_again(seconds: int) -> str:
    """The message for a refused attempt: seconds under a minute, else whole minutes (rounded up)."""
    if seconds < 60:
        unit = "second" if seconds == 1 else "seconds"
        return f"Too many failed sign-in attempts. Try again in {seconds} {unit}."
    minutes = math.ceil(seconds / 60)
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed sign-in attempts. Try again in {minutes} {unit}."
