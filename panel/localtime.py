"""PURE time arithmetic shared by the token and reminder domains: aware instants, local dates, the reminder window.

Imports nothing from Flask or the database. Every datetime in and out is aware; a naive one is refused, as the
UTCDateTime column refuses it, because it is a bug upstream (wrong column type, ``datetime.utcnow()``).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

# Fixed English names: strftime's %a/%b follow the process locale, and the panel must not change with it.
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def aware(at: datetime, name: str = "datetime") -> datetime:
    """``at`` as an aware UTC datetime; ValueError when it is naive."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return at.astimezone(timezone.utc)


def local_date(at: datetime, tz_name: str) -> date:
    """The calendar date at ``at`` in the timezone ``tz_name``."""
    return aware(at, "at").astimezone(ZoneInfo(tz_name)).date()


def window_start(expires_at: datetime, reminder_days: int, tz_name: str) -> datetime:
    """Aware UTC instant the reminder window opens: ``reminder_days`` local calendar days before expiry.

    The local wall-clock time of expiry is kept, so the window start moves with a clock change. A wall time
    that does not exist that day (spring forward) is read with fold=0, i.e. with the offset in force before
    the gap, which lands as far past the gap as the wall time was into it; an ambiguous one (fall back) is
    read with fold=0, the first (earlier) occurrence, so the window never opens late.
    """
    if reminder_days < 0:
        raise ValueError("reminder_days must be >= 0")
    expires_at = aware(expires_at, "expires_at")
    if reminder_days == 0:
        return expires_at  # no calendar arithmetic: keeps an expiry in a repeated hour exact
    tz = ZoneInfo(tz_name)
    wall = expires_at.astimezone(tz).replace(tzinfo=None) - timedelta(days=reminder_days)
    return wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)


def first_at_or_after_wall(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """First aware UTC instant whose local wall time on ``day`` is at or past ``hour``:00."""
    wall = datetime.combine(day, time(hour))
    later = wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)  # a gap: offset before it -> too late
    if later.astimezone(tz).replace(tzinfo=None) == wall:
        return later  # the wall time exists (first occurrence if repeated)
    # ``wall`` falls in a spring-forward gap, so the first valid instant after it is the transition itself.
    # Read with the offset after the gap (fold=1), ``wall`` is an instant before the transition; bisect
    # between the two by whole seconds (tzdata transitions fall on whole seconds).
    earlier = wall.replace(tzinfo=tz, fold=1).astimezone(timezone.utc)
    while later - earlier > timedelta(seconds=1):
        mid = earlier + (later - earlier) // 2
        mid -= timedelta(microseconds=mid.microsecond)
        if mid.astimezone(tz).replace(tzinfo=None) >= wall:
            later = mid
        else:
            earlier = mid
    return later


def plural(n: int, unit: str, units: str | None = None) -> str:
    """ "1 day", "2 days"; ``units`` for irregular plurals ("person"/"people")."""
    return f"{n} {unit}" if n == 1 else f"{n} {units or unit + 's'}"


def format_local(at: datetime, tz_name: str) -> str:
    """``at`` in the company's timezone, e.g. "Thu 1 Apr 2027, 10:00 BST"."""
    local = aware(at, "at").astimezone(ZoneInfo(tz_name))
    return (f"{_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}, "
            f"{local:%H:%M} {local.tzname()}")


def format_local_time(at: datetime, tz_name: str) -> str:
    """``at``'s wall-clock time in the company's timezone, e.g. "10:00" (what static/sage.js writes too)."""
    return f"{aware(at, 'at').astimezone(ZoneInfo(tz_name)):%H:%M}"


def format_since(at: datetime, now: datetime, tz_name: str) -> str:
    """``at`` as a clock time in the company's timezone ("10:15 BST") when it was today there, else in full."""
    if local_date(at, tz_name) != local_date(now, tz_name):
        return format_local(at, tz_name)
    local = aware(at, "at").astimezone(ZoneInfo(tz_name))
    return f"{local:%H:%M} {local.tzname()}"
