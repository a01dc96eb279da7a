"""My notifications' "Send test email": queue it, then poll its progress until a final answer."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from ..auth import safe_next
from ..extensions import htmx
from ..reminders import schedule
from ..render import fragment
from ..sessions import poll_endpoint


@login_required
def test_email():
    """Queue a test reminder to the person who clicked; the fragment then polls until it is sent or fails."""
    state = schedule.start_test_email(current_user)
    if not htmx:
        flash(state.message, "error" if state.ok is False else "info")
        return redirect(safe_next(request.referrer) or url_for("settings.notifications"))
    return fragment("settings/_test_email.html", test_email=state)


@login_required
@poll_endpoint
def test_email_status(job_id: str):
    """Progress of a test email: polled every second; the final answer carries no trigger, so polling stops."""
    state = schedule.test_email_status(job_id, current_user)
    if state is None:
        abort(404)
    return fragment("settings/_test_email.html", test_email=state)
