"""What the screen shows: the stored token, the company's settings and the ledger turned into template context."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from .. import clock, heartbeat
from ..localtime import first_at_or_after_wall, format_local, format_since, local_date, plural
from ..models import Company, SageToken, TokenState
from ..reminders import ledger, parsing, people, recipients
from ..reminders.delivery import uses_outbox
from ..reminders.plan import CompanyPlan
from ..reminders.plan import next_reminder as plan_next
from ..reminders.settings import SETTINGS
from ..sage import check_state, store
from ..sage.check_state import CheckView
from ..sage.status import stable_until, token_status

# Even when nothing shown depends on the time, a widget is rendered afresh at least this often.
MAX_VALIDITY = timedelta(hours=1)
STALE_RECHECK = timedelta(minutes=1)


@dataclass(frozen=True)
class NextReminder:
    """When the next reminder goes and to how many people; ``due``: now, with the next sweep; ``held``: the
    20-hour gap after the last reminder, not the send hour, sets the time."""

    at: datetime | None
    recipients: int
    due: bool = False
    held: bool = False


@dataclass(frozen=True)
class Field:
    """One setting's fragment: the text in the input, the message beside it, and whether it just saved."""

    key: str
    text: str
    error: str | None = None
    saved: bool = False
    note: str | None = None  # what the saved value will do, when that is not obvious


def next_reminder(company: Company, token: SageToken | None, now: datetime) -> NextReminder | None:
    """When the next reminder will go (None when Sage is not connected)."""
    if token is None:
        return None
    plan = CompanyPlan(company.id, company.timezone, company.reminder_hour, company.reminder_days,
                       token.generation, token.expires_at)
    found = plan_next(now, plan, ledger.company_history(company.id, now))
    count = recipients.count(company.id)
    if found is None:
        return NextReminder(None, count)
    return NextReminder(found.at, count, due=found.due, held=found.held)


@dataclass(frozen=True)
class CheckLine:
    """The daily connection check as the widget shows it: one line, and when a failure began."""

    text: str
    failing_since: str | None = None
    broken_reason: str | None = None  # the check's failure, when it applies to the current token


def _when(at: datetime, now: datetime, tz: str) -> str:
    """"08:14" today, else the full local date and time."""
    if local_date(at, tz) == local_date(now, tz):
        return f"{at.astimezone(ZoneInfo(tz)):%H:%M}"
    return format_local(at, tz)


def check_line(check: CheckView | None, token: SageToken | None, company: Company, now: datetime) -> CheckLine | None:
    """What the widget says about the daily connection check (None when Sage is not connected)."""
    if token is None:
        return None
    if check is None or check.status is None:
        return CheckLine("Daily connection check: not run yet" if check is None or check.enabled
                         else "Daily connection check is off")
    if not check.enabled:
        return CheckLine("Daily connection check is off")
    tz = company.timezone
    if check.status == "failing" and check.generation == token.generation:
        since = format_local(check.failing_since, tz) if check.failing_since else None
        return CheckLine(f"Last check failed {_when(check.checked_at, now, tz)}", since, check.reason)
    if check.status == "failing":  # renewed since the failure: the next tick checks again
        return CheckLine("Renewed since the last failed check: checking again within "
                         f"{plural(current_app.config['PANEL_SWEEP_INTERVAL_MINUTES'], 'minute')}")
    return CheckLine(f"Last checked OK {_when(check.ok_at, now, tz)}")


def next_midnight(now: datetime, tz_name: str) -> datetime:
    """The next start of a local day in ``tz_name`` after ``now`` (aware UTC)."""
    return first_at_or_after_wall(local_date(now, tz_name) + timedelta(days=1), 0, ZoneInfo(tz_name))


def widget_context(company: Company, admin: bool) -> dict:
    """Template context for settings/_token_widget.html as ``admin`` (or a user) sees it, with ``valid_until``: the
    first instant at which the widget could look different although nothing in the database changed."""
    token = store.current(company.id)
    now = clock.now()
    reason = token.state_reason if token is not None and token.state == TokenState.NEEDS_LOGIN.value else None
    check = check_line(check_state.view(company.id), token, company, now)
    timing = {"consented_at": token.consented_at if token else None,
              "expires_at": token.expires_at if token else None,
              "reminder_days": company.reminder_days, "tz_name": company.timezone}
    status = token_status(now, needs_login_reason=reason, broken_reason=check.broken_reason if check else None,
                          **timing)
    upcoming = next_reminder(company, token, now)
    changes = [now + MAX_VALIDITY, stable_until(now, **timing)]
    if upcoming is not None and upcoming.at is not None and upcoming.at > now:
        changes.append(upcoming.at)  # then it reads "due now"
    if check is not None:
        changes.append(next_midnight(now, company.timezone))  # "Last checked OK 08:14" then names the day
    warning = None
    if admin and token is not None:  # the scheduler warning is for admins of a connected company
        pulse = heartbeat.sweep_pulse(now, current_app.config["PANEL_SWEEP_INTERVAL_MINUTES"])
        warning = scheduler_warning(company, pulse, now)
        # A sweep's heartbeat raises no poll version: while the warning shows, re-render every minute so it clears
        # soon after sweeps resume; otherwise the widget is re-rendered when the pulse would turn stale.
        changes.append(now + STALE_RECHECK if warning else pulse.stale_at)
    return {"company": company, "token": token, "status": status, "now": now, "check": check,
            "admins": recipients.admins(company.id),  # named to everyone else in the read-only widget
            "last_reminder": ledger.last_reminder(company.id),
            "next_reminder": upcoming, "scheduler_warning": warning,
            "valid_until": min(t for t in changes if t is not None)}


def scheduler_warning(company: Company, pulse: heartbeat.Pulse, now: datetime) -> str | None:
    """What admins are told when no reminder sweep has run for two intervals (None while sweeps run)."""
    if not pulse.stale:
        return None
    since = f"since {format_since(pulse.last, now, company.timezone)}" if pulse.last else "yet"
    return f"Reminders are not being sent: the scheduler has not run {since}."


def days_note(company: Company) -> str | None:
    """What reminder days at or past the token's lifetime mean (the window never closes); None otherwise."""
    token = store.current(company.id)
    if token is not None:
        lifetime = token.expires_at - token.consented_at
    else:
        lifetime = timedelta(days=current_app.config["SAGE_TOKEN_LIFETIME_DAYS"])
    if timedelta(days=company.reminder_days) < lifetime:
        return None
    lasts = plural(lifetime.days, "day") if lifetime >= timedelta(days=1) else "less than a day"
    return (f"{plural(company.reminder_days, 'day')} is at least the token's lifetime ({lasts}), so the reminder "
            "window never closes: reminders start as soon as the token is renewed and go every day, at most one "
            "a day.")


def field(company: Company, key: str, **state) -> Field:
    """One setting's field as saved (``state``: saved=True after a save), with its note."""
    note = days_note(company) if key == "days" else None
    return Field(key, SETTINGS[key].text(company), note=note, **state)


def setting_fields(company: Company) -> dict[str, Field]:
    """Each reminder setting's field as saved."""
    return {key: field(company, key) for key in SETTINGS}


def reminders_context(company: Company, user, query: str, page: people.Request) -> dict:
    """Template context of the reminder cards; admins also get the recipients page for ``query`` and ``page``."""
    ctx = {"reminder_fields": setting_fields(company), "timezones": parsing.timezones(),
           "outbox_enabled": uses_outbox(current_app.config), "test_email": None}
    if user.is_admin:
        ctx["recipients"] = people.find(company.id, query, page)
        ctx["recipient_query"] = query
        ctx["recipient_count"] = recipients.count(company.id)
    return ctx
