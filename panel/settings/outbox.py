"""The demo outbox page: the messages written instead of sent (no MAIL_SERVER, never in production).

Each message shows its raw header block, its text part, and its HTML part in a sandboxed iframe. The iframe's
document comes from its own route with its own CSP: nothing runs (no script source, ``sandbox``), nothing loads,
and only the message's own inline styles apply (each allowed by its hash, never ``unsafe-inline``).
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
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
    headers: str
    has_html: bool


def _read(path: Path):
    return message_from_bytes(path.read_bytes(), policy=policy.default)


def _entry(path: Path, raw: bytes, msg) -> Entry:
    part = msg.get_body(preferencelist=("plain",))
    try:
        date = parsedate_to_datetime(msg["Date"]) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii", "replace")  # as it travelled: folded, encoded-words
    return Entry(path.name, str(msg["To"] or ""), str(msg["Subject"] or ""), date,
                 part.get_content() if part is not None else "", head,
                 msg.get_body(preferencelist=("html",)) is not None)


def entries(company_id: int) -> list[Entry]:
    """The newest messages about ``company_id``, newest first (another company's mail is never listed)."""
    found: list[Entry] = []
    folder = outbox_folder(current_app.instance_path)
    for path in sorted((p for p in folder.iterdir() if NAME.fullmatch(p.name) and p.is_file()), reverse=True):
        raw = path.read_bytes()
        msg = message_from_bytes(raw, policy=policy.default)
        if msg["X-Panel-Company"] == str(company_id):
            found.append(_entry(path, raw, msg))
            if len(found) == LIMIT:
                break
    return found


def _outbox_or_404() -> None:
    if not uses_outbox(current_app.config):
        abort(404)


def _own_message(name: str) -> Path:
    """The outbox file ``name`` when it exists and is about the signed-in admin's company; 404 otherwise."""
    _outbox_or_404()
    path = outbox_folder(current_app.instance_path) / name
    if not NAME.fullmatch(name) or not path.is_file() or _read(path)["X-Panel-Company"] != str(current_user.company_id):
        abort(404)
    return path


class _Styles(HTMLParser):
    """Collects every inline style of an HTML document: style attributes and <style> element contents."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: set[str] = set()
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.found.update(value for name, value in attrs if name == "style" and value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.found.add(data)


def html_csp(html: str) -> str:
    """The CSP for one message's HTML part: nothing loads or runs; its own inline styles allowed by hash."""
    parser = _Styles()
    parser.feed(html)
    parser.close()
    hashes = " ".join(sorted(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                             for s in parser.found))
    return "; ".join([
        "default-src 'none'",
        f"style-src 'unsafe-hashes' {hashes}" if hashes else "style-src 'none'",
        "img-src data:",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'self'",
        "sandbox allow-popups allow-popups-to-escape-sandbox",  # links open in a new tab, nothing else
    ])


@admin_required
def outbox_list():
    """Demo outbox: the reminder emails written instead of sent, newest first (this company's only)."""
    _outbox_or_404()
    return render_template("settings/outbox.html", messages=entries(current_user.company_id))


@admin_required
def outbox_message(name: str):
    """Download one message of the demo outbox as an .eml file."""
    path = _own_message(name)
    return send_file(path, mimetype="message/rfc822", as_attachment=True, download_name=name)


@admin_required
def outbox_html(name: str):
    """One message's HTML part, for the sandboxed iframe on the outbox page (its own restrictive CSP)."""
    part = _read(_own_message(name)).get_body(preferencelist=("html",))
    if part is None:
        abort(404)
    html = part.get_content()
    resp = current_app.response_class(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = html_csp(html)
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"  # shown in the outbox page's iframe, nowhere else
    return resp
