"""Views for "Send test email" (queue, then poll its progress) and the demo outbox."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required

from ..auth import admin_required, safe_next
from ..extensions import htmx
from ..sessions import poll_endpoint
from . import outbox, testmail
from .delivery import uses_outbox
from ..partials import fragment
from .views import bp


@bp.route("/settings/notifications/test-email", methods=["POST"])
@login_required
def test_email():
    """Queue a test reminder to the person who clicked; the fragment then polls until it is sent or fails."""
    state = testmail.start(current_user)
    if not htmx:
        flash(state.message, "error" if state.ok is False else "info")
        back = safe_next(request.referrer) or url_for("reminders.my_notifications")
        return redirect(back)
    return fragment("settings/_test_email.html", test_email=state)


@bp.route("/settings/notifications/test-email/<job_id>")
@login_required
@poll_endpoint
def test_email_status(job_id: str):
    """Progress of a test email: polled every second; the final answer carries no trigger, so polling stops."""
    state = testmail.status(job_id, current_user)
    if state is None:
        abort(404)
    return fragment("settings/_test_email.html", test_email=state)


def _outbox_or_404() -> None:
    if not uses_outbox(current_app.config):
        abort(404)


@bp.route("/settings/sage/outbox")
@admin_required
def outbox_list():
    """Demo outbox: the reminder emails written instead of sent, newest first (this company's only)."""
    _outbox_or_404()
    return render_template("reminders/outbox.html", messages=outbox.entries(current_user.company_id))


@bp.route("/settings/sage/outbox/<name>")
@admin_required
def outbox_message(name: str):
    """Download one message of the demo outbox as an .eml file."""
    _outbox_or_404()
    path = outbox.path_of(name, current_user.company_id)
    if path is None:
        abort(404)
    return send_file(path, mimetype="message/rfc822", as_attachment=True, download_name=name)
