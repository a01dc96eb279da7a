"""The token widget's response: a full render with an ETag, or ``304 Not Modified`` for a poll whose ETag is still
current — answered from the session cookie and this process's poll versions, without rendering or reading the
database.

The ETag names the company, the instant until which nothing shown changes with time alone (the time left in the
unit it is shown in, the lifetime bar's next tenth of a percent, the state, the next reminder), and a MAC over the
user, the company's and the user's poll versions (``panel.versions``), that instant and the code that renders it.
Any change to what the widget shows raises the company's version; any session of the user ending (sign-out, sign
out everywhere, password, role or active flag changed) raises the user's; so such a poll renders in full again, and
a revoked session's full render is a 401. static/sage.js keeps the ETag of the widget it shows and sends it as
If-None-Match on timed polls and when the tab becomes visible again; a change event (sage-token-changed) always
renders in full. The body is the same for everyone of a company and role: nothing personal, no CSRF token.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from flask import Flask, current_app, request, session
from flask_login import current_user

from .. import clock
from ..derived import COMPANY, USER
from ..render import fragment
from ..sessions import poll_endpoint
from ..versions import current
from .presenter import widget_context

ROOT = Path(__file__).resolve().parent.parent.parent
ETAG = re.compile(r'(?:W/)?"(\d{1,12})\.(\d{1,12})\.([0-9a-f]{32})"')


def _secrets(app: Flask) -> tuple[bytes, str]:
    """The MAC key (from SECRET_KEY) and a digest of the code and templates that render the widget."""
    found = app.extensions.get("panel_widget_etag")
    if found is None:
        key = hashlib.sha256(b"panel widget etag\0" + str(app.config["SECRET_KEY"]).encode()).digest()
        code = hashlib.sha256()
        # A deploy that changes any template or module changes every ETag: no stale markup after an upgrade.
        for path in sorted([*(ROOT / "templates").rglob("*.html"), *(ROOT / "panel").rglob("*.py")]):
            code.update(path.read_bytes())
        found = app.extensions["panel_widget_etag"] = (key, code.hexdigest()[:16])
    return found


def etag(app: Flask, user_id: int, company_id: int, versions: dict, until: int) -> str:
    """The validator for this user's widget of ``company_id`` at these versions, good until epoch second ``until``."""
    key, code = _secrets(app)
    message = f"{user_id}|{company_id}|{versions[(COMPANY, company_id)]}|{versions[(USER, user_id)]}|{until}|{code}"
    mac = hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:32]
    return f'W/"{company_id}.{until}.{mac}"'


def _user_id() -> int | None:
    raw = session.get("_user_id")
    return int(raw) if isinstance(raw, str) and raw.isdigit() and len(raw) < 12 else None


def not_modified(app: Flask):
    """A 304 for a poll whose If-None-Match is this user's current ETag; None when the widget must be rendered."""
    found = ETAG.fullmatch(request.headers.get("If-None-Match", "").strip())
    uid = _user_id()
    if found is None or uid is None:
        return None
    company_id, until = int(found.group(1)), int(found.group(2))
    if clock.now().timestamp() >= until:
        return None  # something shown changes with time by now
    versions = current(app, [(USER, uid), (COMPANY, company_id)])
    if versions is None:
        return None
    tag = etag(app, uid, company_id, versions, until)
    if not hmac.compare_digest(tag, found.group(0) if found.group(0).startswith("W/") else "W/" + found.group(0)):
        return None
    return app.response_class(status=304, headers={"ETag": tag})


@poll_endpoint
def widget():
    """The token widget partial: 304 when the poll's ETag is current, else rendered in full with a new ETag."""
    app = current_app._get_current_object()
    answer = not_modified(app)
    if answer is not None:
        return answer
    # The user's version is read BEFORE the session is checked against the database: a session that ends after
    # that check raises the version after this read, so the ETag given here can never match again.
    uid = _user_id()
    mine = current(app, [(USER, uid)]) if uid is not None else None
    if not current_user.is_authenticated:
        return app.login_manager.unauthorized()
    company_id = current_user.company_id
    theirs = current(app, [(COMPANY, company_id)])
    ctx = widget_context(current_user.company)
    resp = fragment("settings/_token_widget.html", **ctx)
    if mine is not None and theirs is not None and uid == current_user.id:
        resp.headers["ETag"] = etag(app, uid, company_id, {**mine, **theirs}, int(ctx["valid_until"].timestamp()))
    return resp
