"""Pure decisions for the reminder sweep: which (company, user) reminders are due at an instant, and when next.

"Daily" means once per local calendar day in the company's timezone, from its send hour on. The ledger key
(company_id, user_id, generation, local_date) is what makes a reminder at most once a day per token generation;
this module only decides, the caller claims and sends.
"""
from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..localtime import aware, first_at_or_after_wall, local_date, window_start

LedgerKey = tuple[int, int, int, date]


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
class Due:
    """One reminder to send now: its ledger key plus what the email says."""

    company_id: int
    user_id: int
    generation: int
    local_date: date
    expired: bool
    days_left: int  # local expiry date minus local today; negative once past the expiry date

    @property
    def key(self) -> LedgerKey:
        """The ledger key this reminder claims."""
        return (self.company_id, self.user_id, self.generation, self.local_date)


def company_is_due(now: datetime, plan: CompanyPlan) -> bool:
    """True when the window is open (or the token expired) and the local send hour has passed today."""
    now = aware(now, "now")
    if now < window_start(plan.expires_at, plan.reminder_days, plan.tz_name):
        return False
    # Compare wall-clock hours: on a spring-forward day the first instant with hour >= send_hour is the
    # transition itself, on a fall-back day it is the first occurrence; the ledger stops a second send.
    return now.astimezone(ZoneInfo(plan.tz_name)).hour >= plan.send_hour


def due_reminders(now: datetime, plans: Iterable[CompanyPlan], recipients: Mapping[int, Iterable[int]],
                  sent: Container[LedgerKey]) -> list[Due]:
    """One Due per due company and recipient whose ledger key for today is not in ``sent``."""
    now = aware(now, "now")
    found: list[Due] = []
    for plan in plans:
        if not company_is_due(now, plan):
            continue
        today = local_date(now, plan.tz_name)
        days_left = (local_date(plan.expires_at, plan.tz_name) - today).days
        expired = now >= aware(plan.expires_at)
        # dict.fromkeys: keep the caller's order but never return the same user twice in one sweep.
        for user_id in dict.fromkeys(recipients.get(plan.company_id, ())):
            if (plan.company_id, user_id, plan.generation, today) in sent:
                continue
            found.append(Due(plan.company_id, user_id, plan.generation, today, expired, days_left))
    return found


def next_reminder_at(now: datetime, plan: CompanyPlan, sent_today: bool) -> datetime | None:
    """Next aware UTC instant a reminder would go for this plan (``now`` if due and not yet sent today).

    Returns None only if no send instant is found within a week of the first candidate day, which real
    tzdata never produces (reminders keep going after expiry until a renewal changes the plan).
    """
    now = aware(now, "now")
    if not sent_today and company_is_due(now, plan):
        return now
    tz = ZoneInfo(plan.tz_name)
    opens = window_start(plan.expires_at, plan.reminder_days, plan.tz_name)
    day = local_date(now, plan.tz_name) + timedelta(days=1 if sent_today else 0)
    day = max(day, local_date(opens, plan.tz_name))  # no point looking at days before the window opens
    for _ in range(7):
        # The sweep sends as soon as both hold: the send hour has come and the window is open.
        candidate = max(first_at_or_after_wall(day, plan.send_hour, tz), opens)
        # A candidate that spilled into the next local day (a whole day skipped by the zone) is not that
        # day's send. It is never in the past: today is only tried when today's send is still ahead.
        if candidate.astimezone(tz).date() == day:
            return candidate
        day += timedelta(days=1)
    return None
