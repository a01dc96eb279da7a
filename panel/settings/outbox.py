"""The demo outbox page: the messages written instead of sent (no MAIL_SERVER, never in production)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from pathlib import Path

from flask import abort, current_app, render_template, send_file
from flask_login import current_user

from ..auth import admin_required
from ..reminders.delivery import outbox_folder, uses_outbox

NAME = re.compile(r"\d{8}T\d{12}-[0-9a-f]{12}\.eml")
LIMIT = 200  # the page lists the newest messages only


@dataclass(frozen=True)
class Entry:
    """One message in the outbox, as the list shows it."""

    name: str
    to: str
    subject: str
    date: object
    text: str


def _read(path: Path):
    return message_from_bytes(path.read_bytes(), policy=policy.default)


def _entry(path: Path, msg) -> Entry:
    part = msg.get_body(preferencelist=("plain",))
    try:
        date = parsedate_to_datetime(msg["Date"]) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    return Entry(path.name, str(msg["To"] or ""), str(msg["Subject"] or ""), date,
                 part.get_content() if part is not None else "")


def entries(company_id: int) -> list[Entry]:
    """The newest messages about ``company_id``, newest first (another company's mail is never listed)."""
    found: list[Entry] = []
    folder = outbox_folder(current_app.instance_path)
    for path in sorted((p for p in folder.iterdir() if NAME.fullmatch(p.name) and p.is_file()), reverse=True):
        msg = _read(path)
        if msg["X-Panel-Company"] == str(company_id):
            found.append(_entry(path, msg))
            if len(found) == LIMIT:
                break
    return found


def _outbox_or_404() -> None:
    if not uses_outbox(current_app.config):
        abort(404)


@admin_required
def outbox_list():
    """Demo outbox: the reminder emails written instead of sent, newest first (this company's only)."""
    _outbox_or_404()
    return render_template("settings/outbox.html", messages=entries(current_user.company_id))


@admin_required
def outbox_message(name: str):
    """Download one message of the demo outbox as an .eml file."""
    _outbox_or_404()
    path = outbox_folder(current_app.instance_path) / name
    if not NAME.fullmatch(name) or not path.is_file() or _read(path)["X-Panel-Company"] != str(current_user.company_id):
        abort(404)
    return send_file(path, mimetype="message/rfc822", as_attachment=True, download_name=name)
