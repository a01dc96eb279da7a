"""Pure token status for the widget: state, colour, time left, lifetime bar and reminder window.

Imports nothing from Flask or the database so it can be tested with plain values; every datetime in and
out is aware (naive datetimes are refused, as the UTCDateTime column does).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..localtime import aware, plural, window_start


class State(str, enum.Enum):
    """What the widget shows about the company's token."""

    NOT_CONNECTED = "not_connected"
    CONNECTED = "connected"
    RENEW_SOON = "renew_soon"
    EXPIRED = "expired"
    NEEDS_LOGIN = "needs_login"
    BROKEN = "broken"  # the daily connection check failed for good (revoked grant, lapsed subscription, …)


_LOOK = {
    State.NOT_CONNECTED: ("grey", "Not connected"),
    State.CONNECTED: ("green", "Connected"),
    State.RENEW_SOON: ("amber", "Renew soon"),
    State.EXPIRED: ("red", "Expired"),
    State.NEEDS_LOGIN: ("red", "Needs Login Now"),
    State.BROKEN: ("red", "Connection broken"),
}


@dataclass(frozen=True)
class TokenStatus:
    """Everything the widget needs to render one company's token at one instant."""

    state: State
    colour: str
    label: str
    expires_at: datetime | None
    remaining: timedelta | None
    remaining_text: str
    lifetime_used: float
    window_start: datetime | None
    window_start_fraction: float
    reason: str | None

    @property
    def days_left(self) -> int | None:
        """THE "days left" of subject, email and widget: see ``days_left()``; None when not connected."""
        return days_left(self.remaining) if self.remaining is not None else None

    @property
    def used_permille(self) -> int:
        """Tenths of a percent of the lifetime used, rounded down: the bar moves in these steps."""
        return min(1000, int(self.lifetime_used * 1000))

    @property
    def headline(self) -> str:
        """The leading part of ``remaining_text`` ("89 days", "5 hours", "expired 3 days ago"): the subject's."""
        return self.remaining_text.split(", ", 1)[0]


def _fraction(part: timedelta, whole: timedelta) -> float:
    # Clipped to 0..1 so a clock skew or an odd consent time cannot draw the bar outside its track.
    return min(1.0, max(0.0, part / whole))


def token_status(now: datetime, *, consented_at: datetime | None, expires_at: datetime | None,
                 reminder_days: int, tz_name: str, needs_login_reason: str | None = None,
                 broken_reason: str | None = None) -> TokenStatus:
    """Status of a token at ``now``: expired beats needs-login beats broken (the daily connection check failed,
    ``broken_reason``) beats renew-soon beats connected."""
    now = aware(now, "now")
    if expires_at is None:
        colour, label = _LOOK[State.NOT_CONNECTED]
        return TokenStatus(State.NOT_CONNECTED, colour, label, None, None, "", 0.0, None, 0.0, None)

    expires_at = aware(expires_at, "expires_at")
    opens = window_start(expires_at, reminder_days, tz_name)
    if now >= expires_at:  # the expiry instant itself is already expired: the token no longer works
        state = State.EXPIRED
    elif needs_login_reason:
        state = State.NEEDS_LOGIN
    elif broken_reason:
        state = State.BROKEN
    elif now >= opens:
        state = State.RENEW_SOON
    else:
        state = State.CONNECTED

    lifetime = expires_at - aware(consented_at, "consented_at") if consented_at is not None else None
    if lifetime is not None and lifetime > timedelta(0):
        used = _fraction(now - (expires_at - lifetime), lifetime)
        opens_at = _fraction(opens - (expires_at - lifetime), lifetime)
    else:
        # Without a usable consent time the bar can only say "not used up" or "used up".
        used = 1.0 if state is State.EXPIRED else 0.0
        opens_at = 0.0

    remaining = expires_at - now
    colour, label = _LOOK[state]
    return TokenStatus(
        state=state, colour=colour, label=label, expires_at=expires_at, remaining=remaining,
        remaining_text=format_remaining(remaining), lifetime_used=used, window_start=opens,
        window_start_fraction=opens_at, reason=needs_login_reason or broken_reason or None,
    )


_TICK = timedelta(microseconds=1)


def stable_until(now: datetime, *, consented_at: datetime | None, expires_at: datetime | None,
                 reminder_days: int, tz_name: str) -> datetime | None:
    """The first instant after ``now`` at which what ``token_status`` shows may differ from now: the state (the
    window opens, the token expires), the time left in the unit it is shown in (hours while a day or more is left,
    then minutes; days, hours, minutes since expiry) or the lifetime bar's tenth of a percent. None when nothing
    shown depends on time (not connected). Never later than the true change; at worst a moment early."""
    if expires_at is None:
        return None
    now, expires_at = aware(now, "now"), aware(expires_at, "expires_at")
    found = [_text_changes(now, expires_at)]
    opens = window_start(expires_at, reminder_days, tz_name)
    found += [t for t in (opens, expires_at) if t > now]
    if consented_at is not None:
        start = aware(consented_at, "consented_at")
        lifetime = expires_at - start
        if lifetime > timedelta(0) and now < expires_at:
            step = min(1000, int(_fraction(now - start, lifetime) * 1000)) + 1
            if step <= 1000:
                found.append(max(start + lifetime * step / 1000, now + _TICK))
    return min(found)


def _text_changes(now: datetime, expires_at: datetime) -> datetime:
    """When ``format_remaining(expires_at - now)`` next changes (its floors are taken at these boundaries)."""
    delta = expires_at - now
    if delta > timedelta(0):
        unit = timedelta(hours=1) if delta >= timedelta(days=1) else timedelta(minutes=1)
        return expires_at - (delta // unit) * unit + _TICK
    ago = -delta
    unit = (timedelta(days=1) if ago >= timedelta(days=1) else
            timedelta(hours=1) if ago >= timedelta(hours=1) else timedelta(minutes=1))
    return expires_at + (ago // unit + 1) * unit


def days_left(delta: timedelta) -> int:
    """Whole 24-hour days until expiry, rounded down (89 days 23 hours is 89; the last day is 0); after expiry,
    minus the whole days since (3 days 5 hours ago is -3). The number leads the widget's time left."""
    if delta > timedelta(0):
        return delta // timedelta(days=1)
    return -(-delta // timedelta(days=1))


def format_remaining(delta: timedelta) -> str:
    """Human time left ("23 days, 4 hours") or since expiry ("expired 3 days ago"); always floored."""
    if delta <= timedelta(0):
        # Zero is the expiry instant, which token_status treats as expired, so it reads as expired too.
        ago = -delta // timedelta(minutes=1)  # whole minutes, floored
        days, hours, minutes = ago // 1440, ago // 60, ago
        if days:
            return f"expired {plural(days, 'day')} ago"
        if hours:
            return f"expired {plural(hours, 'hour')} ago"
        if minutes:
            return f"expired {plural(minutes, 'minute')} ago"
        return "expired just now"

    # Floor to whole minutes so the time left is never overstated (59 s is not "1 minute").
    minutes_left = delta // timedelta(minutes=1)
    days, rest = divmod(minutes_left, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        parts = [plural(days, "day")] + ([plural(hours, "hour")] if hours else [])
    elif hours or minutes:
        parts = ([plural(hours, "hour")] if hours else []) + ([plural(minutes, "minute")] if minutes else [])
    else:
        return "less than a minute"
    return ", ".join(parts)
