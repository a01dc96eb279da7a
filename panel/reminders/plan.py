"""Pure decisions for the reminder sweep: which (company, user) reminders are due at an instant, and when next.

The rule (docs/REMINDERS.md, "When reminders go"):

- A company's reminders go daily at its send hour, on the wall clock of the timezone in force, from the first send
  hour at or after its reminder window opens (so the first one goes at the send hour like every other).
- A person gets at most one per local day: none while any reminder of theirs (any status, any token generation)
  was claimed since their local day began — the day of the timezone in force now, measured as an instant, so moving
  the timezone never gives a day two reminders and never makes a date "already used" by another zone.
- And never two within ``MIN_GAP`` (20 hours): the next waits 20 hours after the last one handed to the mail
  server, whatever happened to the timezone, the send hour or the token generation in between.

This module only decides; the caller claims (ledger key: company, user, local day start) and sends.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..localtime import aware, first_at_or_after_wall, local_date, window_start

MIN_GAP = timedelta(hours=20)  # never two reminders to one person closer than this
LedgerKey = tuple[int, int, datetime]  # company_id, user_id, the instant the local day began


@dataclass(frozen=True)
class CompanyPlan:
    """One company with a current token, as the sweep sees it."""

    company_id: int
    tz_name: str
    send_hour: int
    reminder_days: int
    generation: int
    expires_at: datetime  # aware UTC

    def __post_init__(self) -> None:
        # Refuse bad plans here, where the mistake is, rather than as a silent "never due" later.
        if not 0 <= self.send_hour <= 23:
            raise ValueError("send_hour must be 0..23")
        if self.expires_at.tzinfo is None or self.expires_at.utcoffset() is None:
            raise ValueError("expires_at must be timezone-aware")


@dataclass(frozen=True)
class History:
    """What the ledger holds for one person (or a whole company): the newest claim and the newest send."""

    claimed_at: datetime | None = None  # newest reminder row of any status
    sent_at: datetime | None = None     # newest message handed to the mail server (sending, sent or uncertain)


@dataclass(frozen=True)
class Due:
    """One reminder to send now: its ledger key plus what the email says."""

    company_id: int
    user_id: int
    generation: int
    local_date: date
    day_start: datetime  # aware UTC instant the local day began
    expired: bool
    days_left: int  # local expiry date minus local today; negative once past the expiry date

    @property
    def key(self) -> LedgerKey:
        """The ledger key this reminder claims."""
        return (self.company_id, self.user_id, self.day_start)


@dataclass(frozen=True)
class NextReminder:
    """When the next reminder goes: ``due`` (now, with the next sweep), or at ``at``; ``held`` when the 20-hour
    gap, not the send hour, decides the time."""

    at: datetime
    due: bool = False
    held: bool = False


def day_start(day: date, tz_name: str) -> datetime:
    """Aware UTC instant the local date ``day`` began (the first instant after a midnight gap)."""
    return first_at_or_after_wall(day, 0, ZoneInfo(tz_name))


def send_at(day: date, plan: CompanyPlan) -> datetime:
    """Aware UTC instant of the send hour on local date ``day`` (the first instant past it on a gap day)."""
    return first_at_or_after_wall(day, plan.send_hour, ZoneInfo(plan.tz_name))


def company_is_due(now: datetime, plan: CompanyPlan) -> bool:
    """True when today's send hour has come and fell inside the window (or the token expired)."""
    now = aware(now, "now")
    local = now.astimezone(ZoneInfo(plan.tz_name))
    # Compare wall-clock hours: on a spring-forward day the first instant with hour >= send_hour is the
    # transition itself, on a fall-back day it is the first occurrence; the ledger stops a second send.
    if local.hour < plan.send_hour:
        return False
    return send_at(local.date(), plan) >= window_start(plan.expires_at, plan.reminder_days, plan.tz_name)


def person_is_due(now: datetime, tz_name: str, history: History | None) -> bool:
    """True when nothing was claimed for the person since their local day began and nothing sent within 20 h."""
    if history is None:
        return True
    now = aware(now, "now")
    if history.claimed_at is not None and history.claimed_at >= day_start(local_date(now, tz_name), tz_name):
        return False
    return history.sent_at is None or now >= history.sent_at + MIN_GAP


def due_reminders(now: datetime, plans: Iterable[CompanyPlan], recipients: Mapping[int, Iterable[int]],
                  history: Mapping[tuple[int, int], History]) -> list[Due]:
    """One Due per due company and recipient whose ``history`` (by (company_id, user_id)) allows it now."""
    now = aware(now, "now")
    found: list[Due] = []
    for plan in plans:
        if not company_is_due(now, plan):
            continue
        today = local_date(now, plan.tz_name)
        starts = day_start(today, plan.tz_name)
        days_left = (local_date(plan.expires_at, plan.tz_name) - today).days
        expired = now >= aware(plan.expires_at)
        # dict.fromkeys: keep the caller's order but never return the same user twice in one sweep.
        for user_id in dict.fromkeys(recipients.get(plan.company_id, ())):
            if person_is_due(now, plan.tz_name, history.get((plan.company_id, user_id))):
                found.append(Due(plan.company_id, user_id, plan.generation, today, starts, expired, days_left))
    return found


def next_reminder(now: datetime, plan: CompanyPlan, history: History | None = None) -> NextReminder | None:
    """When the next reminder would go for this plan, given what the ledger holds (``history``).

    Returns None only if no send instant is found within nine days of the first candidate day, which real
    tzdata never produces (reminders keep going after expiry until a renewal changes the plan).
    """
    now = aware(now, "now")
    if company_is_due(now, plan) and person_is_due(now, plan.tz_name, history):
        return NextReminder(now, due=True)
    tz = ZoneInfo(plan.tz_name)
    opens = window_start(plan.expires_at, plan.reminder_days, plan.tz_name)
    day = max(local_date(now, plan.tz_name), local_date(opens, plan.tz_name))
    history = history or History()
    for _ in range(9):
        at, held = send_at(day, plan), False
        if history.sent_at is not None and at < history.sent_at + MIN_GAP:
            at, held = history.sent_at + MIN_GAP, True
        # A send instant that spilled into the next local day (a day the zone skipped, or the 20-hour gap
        # running past midnight) is not that day's; a day that already has a claim has had its reminder.
        claimed = history.claimed_at is not None and history.claimed_at >= day_start(day, plan.tz_name)
        if at.astimezone(tz).date() == day and at > now and send_at(day, plan) >= opens and not claimed:
            return NextReminder(at, held=held)
        day += timedelta(days=1)
    return None
