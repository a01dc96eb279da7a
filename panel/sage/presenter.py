"""Turns the stored token and the company's settings into what the widget shows."""
from __future__ import annotations

from .. import clock
from ..models import Company, TokenState
from . import store
from .status import token_status


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
    from ..reminders import summary

    return {"company": company, "token": token, "status": status, "now": now,
            "last_reminder": summary.last_reminder(company.id),
            "next_reminder": summary.next_reminder(company, token, now)}
