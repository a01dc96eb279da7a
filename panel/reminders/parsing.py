"""PURE parsing of the reminder settings as posted: each parser takes every value sent for its field."""
from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass

MAX_LENGTH = 10  # checked before int(): a 5000-digit string must never reach the integer parser
DAYS_MIN, DAYS_MAX = 1, 365
ASCII_DIGITS = frozenset("0123456789")
# Names zoneinfo lists that are not zones a company could be in (server-specific or placeholders).
NOT_ZONES = frozenset({"localtime", "Factory", "posixrules", "posix", "right"})


@dataclass(frozen=True)
class Parsed:
    """The outcome of parsing one field: ``value`` when valid, else ``error``; ``text`` is what was sent."""

    value: int | str | None
    error: str | None
    text: str

    @property
    def ok(self) -> bool:
        """True when the input was accepted."""
        return self.error is None


KEEP = 100  # at most this much of the person's text is echoed back into the field


def _single(values: list[str]) -> tuple[str | None, str | None]:
    """The one value sent, or an error when the field came zero times or more than once."""
    if len(values) != 1:
        return None, "Send this field exactly once." if values else "Enter a value."
    return values[0], None


def _whole_number(values: list[str], low: int, high: int, what: str) -> Parsed:
    raw, error = _single(values)
    kept = values[0][:KEEP] if values else ""
    if error:
        return Parsed(None, error, kept)
    text = raw.strip(" \t")  # ASCII spaces only: a no-break or ideographic space is not "surrounding space"
    if not text:
        return Parsed(None, f"Enter {what}.", kept)
    # Length first, then ASCII 0-9 only: int() would also take '+7', '1_000', '٧' (Arabic-Indic), '７' (fullwidth).
    if len(text) > MAX_LENGTH or not set(text) <= ASCII_DIGITS:
        return Parsed(None, f"Enter a whole number from {low} to {high}, using only the digits 0 to 9.", kept)
    number = int(text)
    if not low <= number <= high:
        return Parsed(None, f"Enter a whole number from {low} to {high}.", kept)
    return Parsed(number, None, kept)


def reminder_days(values: list[str]) -> Parsed:
    """A whole number of days from 1 to 365 in ASCII digits; surrounding spaces are ignored."""
    return _whole_number(values, DAYS_MIN, DAYS_MAX, "the number of days before expiry")


def reminder_hour(values: list[str]) -> Parsed:
    """An hour of the day, 0 to 23."""
    return _whole_number(values, 0, 23, "an hour of the day")


@functools.lru_cache(maxsize=1)
def timezones() -> tuple[str, ...]:
    """The IANA timezone names a company may choose, sorted."""
    return tuple(sorted(z for z in zoneinfo.available_timezones() if z not in NOT_ZONES))


def timezone(values: list[str]) -> Parsed:
    """An IANA timezone name from ``timezones()``, matched exactly (case matters: that is how they are stored)."""
    raw, error = _single(values)
    kept = values[0][:KEEP] if values else ""
    if error:
        return Parsed(None, error, kept)
    name = raw.strip(" \t")
    if not name:
        return Parsed(None, "Choose a timezone.", kept)
    if len(name) > 64 or name not in _zone_set():
        return Parsed(None, "Choose a timezone from the list, such as Europe/London.", kept)
    return Parsed(name, None, name)


@functools.lru_cache(maxsize=1)
def _zone_set() -> frozenset[str]:
    return frozenset(timezones())


def switch_value(values: list[str]) -> bool | None:
    """The wanted state of a reminder switch: exactly one '1' (on) or '0' (off); None for anything else."""
    return {"1": True, "0": False}.get(values[0]) if len(values) == 1 else None
