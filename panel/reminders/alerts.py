"""Connection alerts: when the daily check opens an incident, the reminder recipients (email) and every channel get
one "Sage connection broken" message; when it closes, one "working again". Claimed in the notice ledger in the same
transaction that notes the incident as alerted, so each goes once per incident — never daily, never lost.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlsplit

from flask import current_app, render_template
from sqlalchemy import select

from .. import audit, events
from ..audit import Action
from ..extensions import db
from ..localtime import format_local
from ..models import Company, User
from ..models_alerts import NotifyChannel
from ..sage import check_state
from ..sage.check_state import CheckView
from .message import Outgoing, header_url, mailbox, multipart, new_message, sender_address, text_part
from .notices import channel_target, claim, user_target
from .unsubscribe import unsubscribe_url

BROKEN, RECOVERED = "broken", "recovered"


def claim_pending(company_id: int, kind: str, incident: int, now: datetime) -> list[int]:
    """Claim the messages of ``kind`` for ``incident`` (recipients by email, and every channel) once; [] when
    they were claimed already, or the state moved on."""
    if not check_state.mark_alerted(company_id, kind, incident):
        db.session.rollback()
        return []
    users = db.session.scalars(select(User.id).where(User.company_id == company_id, User.active.is_(True),
                                                     User.notify_sage_token.is_(True)).order_by(User.id)).all()
    channel_ids = db.session.scalars(select(NotifyChannel.id).where(NotifyChannel.company_id == company_id)).all()
    common = {"company_id": company_id, "kind": kind, "key": str(incident)}
    rows = ([{**common, "target": user_target(u), "user_id": u} for u in users]
            + [{**common, "target": channel_target(c), "channel_id": c} for c in channel_ids])
    ids = claim(rows, now, commit=False)
    view = check_state.view(company_id)
    action = Action.CONNECTION_BROKEN if kind == BROKEN else Action.CONNECTION_RECOVERED
    detail = view.reason if kind == BROKEN and view and view.reason else f"incident {incident}"
    audit.record(company_id, action, f"{detail} — {len(users)} by email, {len(channel_ids)} by channel")
    db.session.commit()
    events.emit(events.CONNECTION_BROKEN if kind == BROKEN else events.CONNECTION_RECOVERED, company_id=company_id,
                incident=incident, emails=len(users), channels=len(channel_ids))
    return ids


def _context(company: Company, kind: str, view: CheckView | None, base_url: str) -> dict:
    tz = company.timezone
    since = view.failing_since if view else None
    return {"company_name": company.name, "broken": kind == BROKEN, "reason": (view.reason if view else None),
            "since_local": format_local(since, tz) if since else None,
            "ok_local": format_local(view.ok_at, tz) if view and view.ok_at else None,
            "settings_url": f"{base_url}/settings/sage"}


def channel_text(company: Company, kind: str, view: CheckView | None, base_url: str) -> tuple[str, str]:
    """(title, body) of the alert for a chat channel."""
    ctx = _context(company, kind, view, base_url)
    if kind == BROKEN:
        title = f"Sage connection broken — {company.name}"
        body = (f"The daily check could not use {company.name}'s Sage connection: {ctx['reason']}\n"
                f"Broken since {ctx['since_local']}. Sage sync is not working. An admin needs to open Settings › "
                f"Sage and click Login Now (or fix the Sage subscription): {ctx['settings_url']}")
    else:
        title = f"Sage connection working again — {company.name}"
        body = (f"The daily check reached Sage for {company.name} again ({ctx['ok_local']}). Sage sync works; "
                f"nothing more to do. {ctx['settings_url']}")
    return title, body


def compose_email(company: Company, user: User, kind: str, incident: int, view: CheckView | None,
                  now: datetime) -> Outgoing:
    """The alert email to ``user`` (text + HTML), with the reminders' one-click unsubscribe."""
    base = header_url(current_app.config["PANEL_BASE_URL"].rstrip("/"))
    host = urlsplit(base).hostname or "panel.invalid"
    unsubscribe = header_url(unsubscribe_url(base, user))
    ctx = _context(company, kind, view, base)
    subject = (f"Sage connection broken for {company.name} — sync has stopped" if kind == BROKEN
               else f"Sage connection working again for {company.name}")
    ctx.update(subject=subject, person_name=user.name, for_admin=bool(user.is_admin), unsubscribe_url=unsubscribe,
               notifications_url=f"{base}/settings/notifications")
    sender = sender_address(current_app.config["MAIL_DEFAULT_SENDER"])
    to = mailbox(user.name, user.email)
    # One id per (incident, kind, person): a retry repeats it, so a provider can drop a duplicate.
    message_id = f"<sage-{kind}.{company.id}.{incident}.{user.id}@{host}>" if incident else \
        f"<sage-{kind}.{uuid.uuid4().hex}@{host}>"
    msg = new_message(sender=sender, to=to, subject=subject, date=now, message_id=message_id, headers={
        "List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Auto-Submitted": "auto-generated", "X-Panel-Company": str(company.id)})
    multipart("alternative", [text_part(render_template("emails/connection_alert.txt", **ctx)),
                              text_part(render_template("emails/connection_alert.html", **ctx), "html")], into=msg)
    return Outgoing(msg, sender.addr_spec, to.addr_spec)
