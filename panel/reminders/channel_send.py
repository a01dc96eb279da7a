"""Token reminders to notification channels: the same rule as the emails (``plan.py``: daily at the send hour in
the window, one per local day, never two within 20 hours), with each channel in the place of a person. The sweep
claims them next to the email batches; ``notice_send.py`` sends them.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from ..extensions import db
from ..localtime import format_local
from ..models import Company, SageToken
from ..models_alerts import NotifyChannel
from ..sage.status import State, token_status
from . import channels, notices
from .mail import subject_for
from .plan import CompanyPlan, company_is_due, day_start, due_reminders, local_date

COMPANY_BATCH = 500


def _plans(now: datetime, after: int) -> list[CompanyPlan]:
    """Companies with a channel and a token whose reminder window is open, by company id after ``after``."""
    with_channel = select(NotifyChannel.id).where(NotifyChannel.company_id == SageToken.company_id)
    rows = db.session.execute(
        select(SageToken.company_id, Company.timezone, Company.reminder_hour, Company.reminder_days,
               SageToken.generation, SageToken.expires_at)
        .join(Company, Company.id == SageToken.company_id)
        .where(SageToken.remind_from <= now, SageToken.company_id > after, with_channel.exists())
        .order_by(SageToken.company_id).limit(COMPANY_BATCH)).all()
    return [CompanyPlan(*r) for r in rows]


def claim_due(now: datetime) -> list[int]:
    """Claim every channel reminder that is due now; returns the new ledger rows' ids."""
    claimed: list[int] = []
    after = 0
    while True:
        plans = _plans(now, after)
        if not plans:
            return claimed
        after = plans[-1].company_id
        plans = [p for p in plans if company_is_due(now, p)]
        ids = [p.company_id for p in plans]
        if not ids:
            continue
        dues = due_reminders(now, plans, channels.ids_by_company(ids), notices.history(ids, now))
        claimed.extend(notices.claim([{
            "company_id": d.company_id, "channel_id": d.user_id, "target": notices.channel_target(d.user_id),
            "kind": "reminder", "key": d.day_start.isoformat(), "generation": d.generation, "day_start": d.day_start,
        } for d in dues], now))


NOTICE_BATCH = 50  # channel messages per send job


def batches(now: datetime) -> list[list[int]]:
    """The sweep's part for channels: claim what is due, give up on rows of dead senders after DATA (uncertain),
    and hand out again rows that were never sent (dead sender before sending, or a refusal to retry)."""
    claimed = claim_due(now)
    notices.resolve_uncertain(now)
    fresh = set(claimed)
    todo = claimed + [i for i in notices.orphans(now) if i not in fresh]
    return [todo[i:i + NOTICE_BATCH] for i in range(0, len(todo), NOTICE_BATCH)]


def why_not(row, now: datetime) -> str | None:
    """Why this channel reminder must not go now (re-checked just before sending), or None when it should."""
    token = db.session.scalar(select(SageToken).where(SageToken.company_id == row.company_id)
                              .execution_options(populate_existing=True))
    if token is None:
        return "Sage was disconnected"
    if token.generation != row.generation:
        return "the token was renewed"
    company = db.session.get(Company, row.company_id, populate_existing=True)
    plan = CompanyPlan(company.id, company.timezone, company.reminder_hour, company.reminder_days,
                       token.generation, token.expires_at)
    if day_start(local_date(now, company.timezone), company.timezone) != row.day_start:
        return "that day is over (today's reminder is claimed separately)"
    if not company_is_due(now, plan):
        return "no longer due (reminder settings changed)"
    return None


def text(company: Company, token: SageToken, now: datetime, base_url: str) -> tuple[str, str]:
    """(title, body) of the day's reminder for a chat channel: the email's subject, then what to do."""
    reason = token.state_reason if token.state == "needs_login" else None
    status = token_status(now, consented_at=token.consented_at, expires_at=token.expires_at,
                          reminder_days=company.reminder_days, tz_name=company.timezone, needs_login_reason=reason)
    expires = format_local(token.expires_at, company.timezone)
    if status.state is State.EXPIRED:
        first = f"The Sage ID token for {company.name} expired on {expires} ({status.remaining_text}). Sage sync " \
                "has stopped until someone renews it."
    else:
        first = f"The Sage ID token for {company.name} expires on {expires}: {status.remaining_text} left."
    problem = f"\nSage ID also reports a problem that needs a new Login Now: {reason}" if reason else ""
    body = (f"{first}{problem}\nAn admin needs to open Settings › Sage and click Login Now: {base_url}/settings/sage\n"
            f"This reminder comes every day at {company.reminder_hour:02d}:00 until the token is renewed.")
    return subject_for(status), body
