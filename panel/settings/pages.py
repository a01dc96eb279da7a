"""The two full pages: Settings › Sage and My notifications."""
from __future__ import annotations

from flask import current_app, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from ..reminders import people, recipients
from ..reminders.delivery import uses_outbox
from ..sessions import SID, active
from .channels import card_context
from .connection import activity_context, activity_limit
from .presenter import reminders_context, widget_context


def index():
    """The panel's home is the Sage settings screen."""
    return redirect(url_for("settings.sage"))


@login_required
def sage():
    """Settings › Sage: the token widget, reminder settings, recipients and the audit list."""
    company = current_user.company
    ctx = widget_context(company, current_user.is_admin)
    ctx.update(reminders_context(company, current_user, recipients.clean_query(request.args.get("q")),
                                 people.request_from(request.args)))
    if current_user.is_admin:
        ctx.update(activity_context(company.id, activity_limit(request.args.get("activity"))))
        ctx.update(card_context(company.id))
    return render_template("settings/sage.html", **ctx)


@login_required
def notifications():
    """My notifications: the signed-in person's own reminder switch, a test email, and where they are signed in."""
    cfg = current_app.config
    return render_template("settings/notifications.html", nav="notifications", person=current_user,
                           company=current_user.company, test_email=None, outbox_enabled=uses_outbox(cfg),
                           sessions=active(current_user.id), current_sid=session.get(SID),
                           idle_minutes=cfg["PANEL_IDLE_TIMEOUT_MINUTES"],
                           absolute_hours=cfg["PANEL_ABSOLUTE_TIMEOUT_HOURS"])
