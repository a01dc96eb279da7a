"""The demo outbox: without MAIL_SERVER (never in production) messages are written as .eml files and listed."""
from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from pathlib import Path

from flask import current_app

from .. import clock

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


def folder() -> Path:
    """<instance>/outbox, created on first use."""
    path = Path(current_app.instance_path) / "outbox"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def write(message) -> str:
    """Write a flask-mail ``message`` as an .eml file (atomically) and return its file name."""
    name = f"{clock.now():%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}.eml"
    tmp = folder() / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(message.as_bytes())
    os.replace(tmp, folder() / name)
    return name


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
    if not (Path(current_app.instance_path) / "outbox").is_dir():
        return []
    found: list[Entry] = []
    for path in sorted((p for p in folder().iterdir() if NAME.fullmatch(p.name)), reverse=True):
        msg = _read(path)
        if msg["X-Panel-Company"] == str(company_id):
            found.append(_entry(path, msg))
            if len(found) == LIMIT:
                break
    return found


def path_of(name: str, company_id: int) -> Path | None:
    """The file of message ``name`` when it exists and is about ``company_id``; None otherwise."""
    if not NAME.fullmatch(name or ""):
        return None
    path = folder() / name
    return path if path.is_file() and _read(path)["X-Panel-Company"] == str(company_id) else None
