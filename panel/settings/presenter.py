"""What the screen shows: the stored token, the company's settings and the ledger turned into template context."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from .. import clock
from ..models import Company, SageToken, TokenState
from ..reminders import ledger, parsing, recipients
from ..reminders.delivery import uses_outbox
from ..reminders.plan import CompanyPlan, local_date, next_reminder_at
from ..reminders.settings import SETTINGS
from ..sage import store
from ..sage.status import token_status


@dataclass(frozen=True)
class NextReminder:
    """When the next reminder goes and to how many people."""

    at: datetime | None
    recipients: int


@dataclass(frozen=True)
class Field:
    """One setting's fragment: the text in the input, the message beside it, and whether it just saved."""

    key: str
    text: str
    error: str | None = None
    saved: bool = False


def next_reminder(company: Company, token: SageToken | None, now: datetime) -> NextReminder | None:
    """When the next reminder will go (None when Sage is not connected)."""
    if token is None:
        return None
    plan = CompanyPlan(company.id, company.timezone, company.reminder_hour, company.reminder_days,
                       token.generation, token.expires_at)
    sent_today = ledger.any_on(company.id, token.generation, local_date(now, company.timezone))
    return NextReminder(next_reminder_at(now, plan, sent_today), recipients.count(company.id))


def widget_context(company: Company) -> dict:
    """Template context for settings/_token_widget.html."""
    token = store.current(company.id)
    now = clock.now()
    reason = token.state_reason if token is not None and token.state == TokenState.NEEDS_LOGIN.value else None
    status = token_status(
        now,
        consented_at=token.consented_at if token else None,
        expires_at=token.expires_at if token else None,
        reminder_days=company.reminder_days,
        tz_name=company.timezone,
        needs_login_reason=reason,
    )
    return {"company": company, "token": token, "status": status, "now": now,
            "admins": recipients.admins(company.id),  # named to everyone else in the read-only widget
            "last_reminder": ledger.last_reminder(company.id),
            "next_reminder": next_reminder(company, token, now)}


def setting_fields(company: Company) -> dict[str, Field]:
    """Each reminder setting's field as saved."""
    return {key: Field(key, setting.text(company)) for key, setting in SETTINGS.items()}


def reminders_context(company: Company, user, query: str, page: int) -> dict:
    """Template context of the reminder cards; admins also get the recipients page for ``query`` and ``page``."""
    ctx = {"reminder_fields": setting_fields(company), "timezones": parsing.timezones(),
           "outbox_enabled": uses_outbox(current_app.config), "test_email": None}
    if user.is_admin:
        ctx["recipients"] = recipients.find(company.id, query, page)
        ctx["recipient_query"] = query
        ctx["recipient_count"] = recipients.count(company.id)
    return ctx
