"""Reminder settings, recipients and My notifications: parse the request, call the domain, render a partial."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth import admin_required, company_scoped
from ..extensions import htmx
from ..partials import CHANGED, fragment
from ..models import Company, User
from . import forms, recipients, settings
from .delivery import uses_outbox

bp = Blueprint("reminders", __name__)
RECIPIENTS_CHANGED = "recipients-changed, " + CHANGED  # the count line refreshes too
PARSERS = {"days": (forms.reminder_days, "reminder_days"), "hour": (forms.reminder_hour, "reminder_hour"),
           "timezone": (forms.timezone, "timezone")}


@dataclass(frozen=True)
class Field:
    """One setting's fragment: the text in the input, the message beside it, and whether it just saved."""

    key: str
    text: str
    error: str | None = None
    saved: bool = False


def _fields(company: Company) -> dict[str, Field]:
    return {"days": Field("days", str(company.reminder_days)), "hour": Field("hour", str(company.reminder_hour)),
            "timezone": Field("timezone", company.timezone)}


def context_for(company, user) -> dict:
    """Template context the Sage settings page needs for the reminder sections."""
    ctx = {"reminder_fields": _fields(company), "timezones": forms.timezones(),
           "outbox_enabled": uses_outbox(current_app.config), "test_email": None}
    if user.is_admin:
        query = recipients.clean_query(request.args.get("q"))
        ctx["recipients"] = recipients.find(company.id, query, recipients.page_number(request.args.get("page")))
        ctx["recipient_count"] = recipients.count(company.id)
    return ctx


@bp.route("/settings/sage/reminders/<field>", methods=["POST"])
@admin_required
def save_setting(field: str):
    """Save one reminder setting as it is changed; the field's fragment says "Saved" or why not."""
    if field not in PARSERS:
        abort(404)
    parse, name = PARSERS[field]
    parsed = parse(request.form.getlist(name))
    error = parsed.error
    if parsed.ok:
        try:
            settings.save(current_user.company_id, settings.SETTINGS[field], parsed.value, current_user)
        except settings.SettingConflict:
            error = "Someone else is changing this setting right now. Please try again."
    if not htmx:
        flash(error or "Saved.", "error" if error else "success")
        return redirect(url_for("sage.settings"))
    company = current_user.company
    state = Field(field, parsed.text, error) if error else Field(field, _fields(company)[field].text, saved=True)
    return fragment(f"settings/_reminder_{field}.html", trigger=None if error else CHANGED, f=state, company=company,
                    timezones=forms.timezones())


@bp.route("/settings/sage/recipients")
@admin_required
def recipient_list():
    """Search and page through the company's users (the list fragment, or the page for a plain request)."""
    query = recipients.clean_query(request.args.get("q"))
    page = recipients.page_number(request.args.get("page"))
    if not htmx or htmx.boosted:
        return redirect(url_for("sage.settings", q=query or None, page=page if page > 1 else None,
                                _anchor="recipients"))
    return fragment("settings/_recipient_list.html", recipients=recipients.find(current_user.company_id, query, page))


@bp.route("/settings/sage/recipients/count")
@admin_required
def recipient_count():
    """The "N people will be emailed" line, refreshed whenever a switch changes."""
    return fragment("settings/_recipient_count.html", recipient_count=recipients.count(current_user.company_id))


@bp.route("/settings/notifications")
@login_required
def my_notifications():
    """My notifications: the signed-in person's own reminder switch and a test email."""
    return render_template("settings/notifications.html", nav="notifications", person=current_user,
                           company=current_user.company, test_email=None,
                           outbox_enabled=uses_outbox(current_app.config))


@bp.route("/settings/notifications/<int:user_id>", methods=["POST"])
@login_required
def switch(user_id: int):
    """Switch one person's reminders on or off: yourself, or (admins) anyone in your company; else 404."""
    if user_id != current_user.id and not current_user.is_admin:
        abort(404)  # the same answer as a missing id: nothing tells a user which ids exist
    person = company_scoped(User, id=user_id).first_or_404()
    on = forms.switch_value(request.form.getlist("on"))
    if on is None:
        abort(400)
    recipients.switch(person, on, current_user)
    as_row = request.form.get("fragment") == "row" and current_user.is_admin
    if not htmx:
        flash(f"Reminders {'on' if on else 'off'} for {person.name}.", "success")
        return redirect(url_for("sage.settings", _anchor="recipients") if as_row else url_for(".my_notifications"))
    if as_row:
        return fragment("settings/_recipient_row.html", trigger=RECIPIENTS_CHANGED, person=person)
    return fragment("settings/_my_switch.html", trigger=RECIPIENTS_CHANGED, person=person)


def init_app(app: Flask) -> None:
    """Register the blueprint (with the test email, outbox and unsubscribe routes)."""
    from . import mail_views, unsubscribe_views  # noqa: F401  (they add routes to bp)

    unsubscribe_views.exempt_from_csrf()
    app.register_blueprint(bp)
