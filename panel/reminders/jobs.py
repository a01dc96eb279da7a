"""RQ job functions of the reminders (run by the worker, enqueued by dotted path)."""
from __future__ import annotations

from ..jobs import with_app_context


@with_app_context
def send_test_email(user_id: int) -> dict:
    """Send today's reminder, exactly as it would look, to user ``user_id`` (a preview when Sage isn't connected)."""
    from flask import current_app

    from .. import audit, clock
    from ..audit import Action
    from ..extensions import db
    from ..models import User
    from ..sage import store
    from . import delivery
    from .mail import UnsafeHeader, compose_reminder

    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return {"ok": False, "to": None, "reason": "that account no longer exists or is inactive"}
    token = store.current(user.company_id)
    try:
        message = compose_reminder(user.company, user, token, clock.now(), current_app.config["PANEL_BASE_URL"],
                                   test=True)
    except UnsafeHeader:
        return {"ok": False, "to": user.email, "reason": "your email address can't be used in an email header"}
    outcome = delivery.send_batch([message])[0]
    detail = f"To {user.email}: " + ("sent" if outcome.sent else f"failed ({outcome.reason})")
    audit.record(user.company_id, Action.TEST_EMAIL, detail, actor=user, commit=True)
    return {"ok": outcome.sent, "to": user.email, "reason": outcome.reason, "outcome": outcome.outcome.value,
            "preview": token is None, "outbox": delivery.uses_outbox(current_app.config)}


# Thin entry points for the daily sweep (panel/reminders/sweep.py and sender.py hold the logic): schedule.py
# registers ``sweep`` with rq cron, and the sweep enqueues ``send_batch`` by dotted path with an RQ Retry.
@with_app_context
def sweep() -> dict:
    """The periodic reminder sweep: claim every reminder that is due and enqueue the send batches."""
    from .. import clock
    from .sweep import run

    return run(clock.now())


@with_app_context
def send_batch(ids: list[int]) -> dict:
    """Send one batch of claimed reminders over one SMTP connection; transient failures raise so RQ retries."""
    from dataclasses import asdict

    from .sender import send_claimed

    return asdict(send_claimed(ids))
