"""The alerts card (admins): the daily connection check switch, and the notification channels — add (checked
inline), send a test, remove. Every action answers with the whole card (settings/_channels.html)."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user

from .. import audit, clock
from ..audit import Action
from ..auth import admin_required
from ..extensions import htmx
from ..reminders import channels, parsing
from ..reminders.channels import Form
from ..render import CHANGED, fragment
from ..sage import check_state


def card_context(company_id: int, form: Form | None = None, result: str | None = None, ok: bool = True,
                 focus: bool = False) -> dict:
    """Template context of the alerts card (``focus``: the result line takes keyboard focus)."""
    check = check_state.view(company_id)
    return {"channels": channels.listed(company_id), "channel_form": form or Form(), "channel_result": result,
            "channel_ok": ok, "check_enabled": check is None or check.enabled,
            "max_channels": channels.MAX_CHANNELS, "channel_focus": focus}


def _answer(result: str | None = None, ok: bool = True, form: Form | None = None, changed: bool = False,
            focus: bool = False):
    if not htmx:
        flash(result or (form and (form.url_error or form.label_error)) or "Saved.", "success" if ok else "error")
        return redirect(url_for("settings.sage", _anchor="alerts-card"))
    return fragment("settings/_channels.html", trigger=CHANGED if changed else None,
                    **card_context(current_user.company_id, form, result, ok, focus))


@admin_required
def card():
    """The card as stored now."""
    if not htmx or htmx.boosted:
        return redirect(url_for("settings.sage", _anchor="alerts-card"))
    return _answer()


@admin_required
def add():
    """Add a channel; a bad URL or name gets a message beside the field and changes nothing."""
    urls, labels = request.form.getlist("url"), request.form.getlist("label")
    if len(urls) != 1 or len(labels) > 1:
        return _answer(ok=False, form=Form(url_error="Send the form once, with one URL."))
    form = channels.add(current_user.company, current_user, urls[0], labels[0] if labels else "")
    if form.added is None:
        return _answer(ok=False, form=form)
    # Focus stays where it was (htmx keeps it on the field by id), ready for another; the result is announced.
    return _answer(f"Added {form.added}. Use Send test to check that messages arrive.", changed=True)


@admin_required
def remove(channel_id: int):
    """Remove a channel (confirmed in the page)."""
    label = channels.remove(current_user.company_id, channel_id, current_user)
    if label is None:
        abort(404)  # another company's channel is as missing as one that never existed
    return _answer(f"Removed {label}. Nothing more is sent there.", changed=True, focus=True)


@admin_required
def test(channel_id: int):
    """"Send test": a short message to the channel now; the card says whether it arrived."""
    channel = channels.find(current_user.company_id, channel_id) or abort(404)
    ok, text = channels.send_test(current_user.company, channel, current_user)
    return _answer(text, ok, changed=True)


@admin_required
def switch_check():
    """Turn the company's daily connection check on or off."""
    on = parsing.switch_value(request.form.getlist("on"))
    if on is None:
        abort(400)
    if check_state.set_enabled(current_user.company_id, on, clock.now()):
        audit.record(current_user.company_id, Action.CHECK_SWITCHED, "on" if on else "off", actor=current_user,
                     commit=True)
    return _answer(f"Daily connection check {'on' if on else 'off'}.", changed=True)
