"""The reminder cards: save one setting inline, search and page recipients, switch a person's reminders."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from ..auth import admin_required, company_scoped
from ..extensions import db, htmx
from ..models import User
from ..reminders import parsing, people, recipients, settings
from ..render import CHANGED, fragment
from .presenter import Field
from .presenter import field as saved_field

RECIPIENTS_CHANGED = "recipients-changed, " + CHANGED  # the count line refreshes too


@admin_required
def save_setting(field: str):
    """Save one reminder setting as it is changed; the field's fragment says "Saved" or why not."""
    setting = settings.SETTINGS.get(field) or abort(404)
    parsed = setting.parse(request.form.getlist(setting.column))
    error = parsed.error
    if parsed.ok:
        try:
            settings.save(current_user.company_id, setting, parsed.value, current_user)
        except settings.SettingConflict:
            error = "Someone else is changing this setting right now. Please try again."
    if not htmx:
        flash(error or "Saved.", "error" if error else "success")
        return redirect(url_for("settings.sage"))
    company = current_user.company
    state = Field(field, parsed.text, error) if error else saved_field(company, field, saved=True)
    return fragment(setting.partial, trigger=None if error else CHANGED, f=state, company=company,
                    timezones=parsing.timezones())


@admin_required
def recipient_list():
    """Search and page through the company's users (the list fragment, or the page for a plain request)."""
    query = recipients.clean_query(request.args.get("q"))
    if not htmx or htmx.boosted:
        paging = {k: request.args.get(k) for k in ("page", "after", "before") if request.args.get(k)}
        if paging.get("page") == "1":
            del paging["page"]
        return redirect(url_for("settings.sage", q=query or None, **paging, _anchor="recipients"))
    return fragment("settings/_recipient_list.html", recipient_query=query,
                    recipients=people.find(current_user.company_id, query, people.request_from(request.args)))


@admin_required
def recipient_count():
    """The "N people will be emailed" line, refreshed whenever a switch changes."""
    return fragment("settings/_recipient_count.html", recipient_count=recipients.count(current_user.company_id))


@login_required
def switch(user_id: int):
    """Switch one person's reminders on or off: yourself, or (admins) anyone in your company; else 404."""
    if user_id != current_user.id and not current_user.is_admin:
        abort(404)  # the same answer as a missing id: nothing tells a user which ids exist
    person = db.first_or_404(company_scoped(User, id=user_id))
    on = parsing.switch_value(request.form.getlist("on"))
    if on is None:
        abort(400)
    recipients.switch(person, on, current_user)
    as_row = request.form.get("fragment") == "row" and current_user.is_admin
    if not htmx:
        flash(f"Reminders {'on' if on else 'off'} for {person.name}.", "success")
        return redirect(url_for("settings.sage", _anchor="recipients") if as_row
                        else url_for("settings.notifications"))
    if as_row:
        return fragment("settings/_recipient_row.html", trigger=RECIPIENTS_CHANGED, person=person)
    return fragment("settings/_my_switch.html", trigger=RECIPIENTS_CHANGED, person=person)
