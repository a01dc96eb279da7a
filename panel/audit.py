"""The audit list: record what happened to a company's Sage connection and settings, and read the latest."""
from __future__ import annotations

import enum

from sqlalchemy import select

from . import clock
from .extensions import db
from .models import AuditEvent


class Action(str, enum.Enum):
    """Kinds of audit event."""

    CONNECTED = "connected"
    RENEWED = "renewed"
    DISCONNECTED = "disconnected"
    REFRESH_FAILED = "refresh_failed"
    CONNECTION_CHECKED = "connection_checked"
    SETTING_CHANGED = "setting_changed"
    RECIPIENT_CHANGED = "recipient_changed"
    TEST_EMAIL = "test_email"
    UNSUBSCRIBED = "unsubscribed"
    CHANNEL_ADDED = "channel_added"
    CHANNEL_REMOVED = "channel_removed"
    CHANNEL_TESTED = "channel_tested"
    CHECK_SWITCHED = "check_switched"
    CONNECTION_BROKEN = "connection_broken"
    CONNECTION_RECOVERED = "connection_recovered"


LABELS = {
    Action.CONNECTED: "Connected to Sage",
    Action.RENEWED: "Renewed the Sage token",
    Action.DISCONNECTED: "Disconnected Sage",
    Action.REFRESH_FAILED: "Token refresh failed",
    Action.CONNECTION_CHECKED: "Checked the connection",
    Action.SETTING_CHANGED: "Changed a setting",
    Action.RECIPIENT_CHANGED: "Changed a reminder recipient",
    Action.TEST_EMAIL: "Sent a test email",
    Action.UNSUBSCRIBED: "Unsubscribed from reminders",
    Action.CHANNEL_ADDED: "Added a notification channel",
    Action.CHANNEL_REMOVED: "Removed a notification channel",
    Action.CHANNEL_TESTED: "Sent a test message to a channel",
    Action.CHECK_SWITCHED: "Switched the daily connection check",
    Action.CONNECTION_BROKEN: "Daily check found the connection broken",
    Action.CONNECTION_RECOVERED: "Daily check found the connection working again",
}


def record(company_id: int, action: Action, detail: str = "", actor=None, actor_name: str | None = None,
           commit: bool = False) -> AuditEvent:
    """Add an audit event (in the caller's transaction unless ``commit``). ``actor`` is a User or None (system)."""
    event = AuditEvent(
        company_id=company_id,
        at=clock.now(),
        actor_id=getattr(actor, "id", None),
        actor_name=(actor_name or getattr(actor, "name", None) or "System")[:200],
        action=Action(action).value,
        detail=detail[:1000],
    )
    db.session.add(event)
    if commit:
        db.session.commit()
    return event


def latest(company_id: int, limit: int = 20) -> list[AuditEvent]:
    """The company's most recent events, newest first."""
    return list(db.session.execute(
        select(AuditEvent).filter_by(company_id=company_id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)).scalars())


def label(action: str) -> str:
    """Human label of an action value."""
    try:
        return LABELS[Action(action)]
    except ValueError:
        return action
