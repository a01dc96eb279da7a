"""Compose the token reminder: subject by days left, text + HTML parts worded by role, the expiry as an .ics
attachment, RFC 8058 one-click unsubscribe headers. Returns an ``Outgoing`` (see ``message.py``)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from types import SimpleNamespace
from urllib.parse import urlsplit

from flask import current_app, g, render_template

from ..localtime import format_local, local_date
from ..sage.status import State, TokenStatus, token_status
from . import recipients
from .ics import FILENAME, expiry_event
from .message import (Outgoing, UnsafeHeader, header_address, header_text, header_url, mailbox, multipart,
                      new_message, sender_address, text_part)
from .recipients import Admins
from .unsubscribe import unsubscribe_url

__all__ = ["UnsafeHeader", "compose_reminder", "header_address", "header_text", "header_url", "subject_for"]


def subject_for(status: TokenStatus) -> str:
    """The subject, by the one definition of time left (``TokenStatus.headline``, whole units rounded down):
    "expires in 89 days", "expires in 5 hours", "expired 3 days ago" — the widget's leading figure."""
    if status.state is State.EXPIRED:
        return f"Sage token {status.headline} — Sage sync has stopped"
    return f"Sage token expires in {status.headline} — renew now"


def _preview_token(company, now: datetime):
    """A stand-in token for companies not connected yet: as the first reminder would look."""
    expires = now + timedelta(days=company.reminder_days)
    lifetime = current_app.config.get("SAGE_TOKEN_LIFETIME_DAYS", 90)
    return SimpleNamespace(expires_at=expires, consented_at=expires - timedelta(days=lifetime), generation=0,
                           connected_by_name=None, state="ok", state_reason=None)


def _admins(company_id: int) -> Admins:
    """The company's admins, read once per app context (a send job, a request): a batch names the same people."""
    known = g.setdefault("panel_reminder_admins", {})
    if company_id not in known:
        known[company_id] = recipients.admins(company_id)
    return known[company_id]


@lru_cache(maxsize=256)
def _calendar_part(ics: str):
    """The .ics attachment as a MIME part, made once per calendar text (one per company and role in a batch) and
    shared by the messages that carry it: a part is never modified once made, and serialising does not change it."""
    return text_part(ics, "calendar", filename=FILENAME)


def _message_id(company, user, token, now: datetime, host: str, unique: bool) -> str:
    """The day's reminder has one id per (company, person, token generation, local day): a retry repeats it, so a
    provider can drop the duplicate. Test emails and previews get a fresh one (never mistaken for the real one)."""
    if unique:
        return f"<sage-test.{uuid.uuid4().hex}@{host}>"
    day = local_date(now, company.timezone)
    return f"<sage-reminder.{company.id}.{user.id}.{token.generation}.{day.isoformat()}@{host}>"


def compose_reminder(company, user, token, now: datetime, base_url: str, *, test: bool = False,
                     admins: Admins | None = None) -> Outgoing:
    """The reminder for ``user`` about ``company``'s ``token`` at ``now``; with no token, a labelled preview.

    Admins are told how to renew; everyone else which admins to ask (``admins``: looked up when not given).
    """
    preview = token is None
    shown = _preview_token(company, now) if preview else token
    reason = shown.state_reason if shown.state == "needs_login" else None
    status = token_status(now, consented_at=shown.consented_at, expires_at=shown.expires_at,
                          reminder_days=company.reminder_days, tz_name=company.timezone, needs_login_reason=reason)
    base = header_url(base_url.rstrip("/"))
    host = urlsplit(base).hostname or "panel.invalid"
    unsubscribe = header_url(unsubscribe_url(base, user))
    for_admin = bool(user.is_admin)
    if admins is None:
        admins = Admins(()) if for_admin else _admins(company.id)
    subject = subject_for(status)
    if preview:
        subject = f"[Preview] {subject}"
    elif test:
        subject = f"[Test] {subject}"
    settings_url = f"{base}/settings/sage"
    ctx = dict(
        company_name=company.name, person_name=user.name, subject=subject, status=status,
        expired=status.state is State.EXPIRED, reason=status.reason, preview=preview, test=test,
        for_admin=for_admin, admins=admins, switched_on=bool(user.notify_sage_token),
        window_open=now >= status.window_start, window_local=format_local(status.window_start, company.timezone),
        expires_local=format_local(shown.expires_at, company.timezone),
        connected_by=shown.connected_by_name, connected_local=format_local(shown.consented_at, company.timezone),
        reminder_days=company.reminder_days, send_hour=f"{company.reminder_hour:02d}:00",
        settings_url=settings_url, notifications_url=f"{base}/settings/notifications",
        unsubscribe_url=unsubscribe,
    )
    sender = sender_address(current_app.config["MAIL_DEFAULT_SENDER"])
    to = mailbox(user.name, user.email)
    msg = new_message(sender=sender, to=to, subject=subject, date=now,
                      message_id=_message_id(company, user, shown, now, host, unique=preview or test),
                      headers={
                          "List-Unsubscribe": f"<{unsubscribe}>",
                          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                          "Auto-Submitted": "auto-generated",  # RFC 3834: no out-of-office replies
                          "X-Panel-Company": str(company.id),
                      })
    body = multipart("alternative", [text_part(render_template("emails/token_reminder.txt", **ctx)),
                                     text_part(render_template("emails/token_reminder.html", **ctx), "html")])
    if preview:  # a preview's dates are an example: nothing to put in a calendar
        multipart("mixed", [body], into=msg)
    else:
        ics = expiry_event(company_id=company.id, company_name=company.name, generation=shown.generation,
                           consented_at=shown.consented_at, expires_at=shown.expires_at, settings_url=settings_url,
                           host=host, for_admin=for_admin, admins=admins.named)
        multipart("mixed", [body, _calendar_part(ics)], into=msg)
    return Outgoing(msg, sender.addr_spec, to.addr_spec)
