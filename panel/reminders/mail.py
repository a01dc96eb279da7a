"""Compose the token reminder: subject by days left, text + HTML parts, RFC 8058 one-click unsubscribe headers."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from flask import current_app, render_template
from flask_mail import Message

from ..localtime import format_local, plural
from ..sage.status import State, token_status
from .unsubscribe import unsubscribe_url

# Anything that could end a header line or hide in one: C0/C1 controls, DEL, Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ADDRESS = re.compile(r"[^\s<>(),;:\"\[\]\\@]+@[^\s<>(),;:\"\[\]\\@]+")


class UnsafeHeader(ValueError):
    """A value that would go into a header (an address or URL) contains characters that cannot be made safe."""


def header_text(value: str, limit: int = 200) -> str:
    """``value`` with every control character (CR, LF, NUL, ...) replaced by a space: safe in any header."""
    return " ".join(_CONTROL.sub(" ", value or "").split())[:limit]


def header_address(email: str) -> str:
    """``email`` unchanged when it is one plain address; UnsafeHeader otherwise (never silently rewritten)."""
    if not email or len(email) > 254 or not _ADDRESS.fullmatch(email):
        raise UnsafeHeader(f"not a single plain email address: {email!r}")
    return email


def header_url(url: str) -> str:
    """``url`` unchanged when it has no spaces, controls or angle brackets; UnsafeHeader otherwise."""
    if not re.fullmatch(r"https?://[!#-;=?-~]+", url or ""):  # printable ASCII except space, '<', '>'
        raise UnsafeHeader(f"unsafe URL for a header: {url!r}")
    return url


def subject_for(now: datetime, expires_at: datetime, tz_name: str) -> str:
    """The subject, counting local calendar days: "expires in 12 days", "expires today", "expired 3 days ago"."""
    tz = ZoneInfo(tz_name)
    days = (expires_at.astimezone(tz).date() - now.astimezone(tz).date()).days
    if now >= expires_at:
        when = "today" if days >= 0 else f"{plural(-days, 'day')} ago"
        return f"Sage token expired {when} — Sage sync has stopped"
    when = {0: "today", 1: "tomorrow"}.get(days, f"in {plural(days, 'day')}")
    return f"Sage token expires {when} — renew now"


def _preview_token(company, now: datetime):
    """A stand-in token for companies not connected yet: as the first reminder would look."""
    expires = now + timedelta(days=company.reminder_days)
    lifetime = current_app.config.get("SAGE_TOKEN_LIFETIME_DAYS", 90)
    return SimpleNamespace(expires_at=expires, consented_at=expires - timedelta(days=lifetime),
                           connected_by_name="nobody yet", state="ok", state_reason=None)


def compose_reminder(company, user, token, now: datetime, base_url: str, *, test: bool = False) -> Message:
    """The reminder for ``user`` about ``company``'s ``token`` at ``now``; with no token, a labelled preview."""
    preview = token is None
    shown = _preview_token(company, now) if preview else token
    reason = shown.state_reason if shown.state == "needs_login" else None
    status = token_status(now, consented_at=shown.consented_at, expires_at=shown.expires_at,
                          reminder_days=company.reminder_days, tz_name=company.timezone, needs_login_reason=reason)
    base = header_url(base_url.rstrip("/"))
    unsubscribe = header_url(unsubscribe_url(base, user))
    subject = subject_for(now, shown.expires_at, company.timezone)
    if preview:
        subject = f"[Preview] {subject}"
    elif test:
        subject = f"[Test] {subject}"
    ctx = dict(
        company_name=company.name, person_name=user.name, subject=subject, status=status,
        expired=status.state is State.EXPIRED, reason=status.reason, preview=preview, test=test,
        expires_local=format_local(shown.expires_at, company.timezone),
        connected_by=shown.connected_by_name, connected_local=format_local(shown.consented_at, company.timezone),
        reminder_days=company.reminder_days, send_hour=f"{company.reminder_hour:02d}:00",
        settings_url=f"{base}/settings/sage", notifications_url=f"{base}/settings/notifications",
        unsubscribe_url=unsubscribe,
    )
    return Message(
        subject=header_text(subject),
        recipients=[(header_text(user.name), header_address(user.email))],
        sender=current_app.config["MAIL_DEFAULT_SENDER"],
        body=render_template("emails/token_reminder.txt", **ctx),
        html=render_template("emails/token_reminder.html", **ctx),
        date=now.timestamp(),
        extra_headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",  # RFC 3834: no out-of-office replies
            "X-Panel-Company": str(company.id),
        },
    )
