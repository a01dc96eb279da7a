"""The conditional widget poll, answered in front of Flask: ``304 Not Modified`` when the poll's If-None-Match is
the user's current widget ETag, from the signed session cookie and this process's poll versions alone — no request
context, no rendering, no database statement, no Redis. Anything else goes on to Flask unchanged (which renders the
widget in full and gives it a new ETag, or answers 401 to a session that ended).

The ETag names the company, the instant until which nothing shown changes with time alone, and a MAC (key derived
from SECRET_KEY) over the user, the company's and the user's poll versions (``panel.versions``), that instant and a
digest of the code and templates. So it stops matching when anything the widget shows changes (the company's
version), when any session of the user ends or the user's password, role or active flag changes (the user's
version), when the time shown moves on, and after a deploy. The cookie is checked exactly as Flask opens it
(signature, SECRET_KEY_FALLBACKS, lifetime) and the idle and absolute timeouts as ``panel.sessions`` enforces them;
an expired session goes on to Flask, which ends it.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from flask import Flask
from itsdangerous import BadSignature

from . import clock
from .busy import DatabaseBusy
from .derived import COMPANY, USER
from .security import fixed_headers
from .versions import current

ROOT = Path(__file__).resolve().parent.parent
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
    """The validator of ``user_id``'s widget of ``company_id`` at these versions, good until epoch second ``until``."""
    key, code = _secrets(app)
    message = f"{user_id}|{company_id}|{versions[(COMPANY, company_id)]}|{versions[(USER, user_id)]}|{until}|{code}"
    return f'W/"{company_id}.{until}.{hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:32]}"'


def user_id(data) -> int | None:
    """The signed-in user's id from session data, or None."""
    raw = data.get("_user_id")
    return int(raw) if isinstance(raw, str) and raw.isdigit() and len(raw) < 12 else None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class PollGate:
    """WSGI middleware: 304 for a current conditional GET of ``path``; everything else to ``wsgi_app``."""

    def __init__(self, app: Flask, wsgi_app, path: str):
        self.app, self.wsgi_app, self.path = app, wsgi_app, path

    def __call__(self, environ, start_response):
        tag = environ.get("HTTP_IF_NONE_MATCH")
        if tag and environ.get("PATH_INFO") == self.path and environ.get("REQUEST_METHOD") == "GET":
            headers = self.not_modified(tag, environ.get("HTTP_COOKIE", ""))
            if headers is not None:
                start_response("304 Not Modified", headers)
                return []
        return self.wsgi_app(environ, start_response)

    def _session(self, cookie_header: str) -> dict | None:
        app = self.app
        value = _cookie(cookie_header, app.config["SESSION_COOKIE_NAME"])
        serializer = app.session_interface.get_signing_serializer(app)
        if not value or serializer is None:
            return None
        try:
            data = serializer.loads(value, max_age=int(app.permanent_session_lifetime.total_seconds()))
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None

    def not_modified(self, tag: str, cookie_header: str) -> list[tuple[str, str]] | None:
        """The 304's headers when ``tag`` is the cookie's user's current ETag; None to let Flask answer."""
        found = ETAG.fullmatch(tag.strip())
        data = self._session(cookie_header) if found else None
        uid = user_id(data) if data else None
        if uid is None:
            return None
        app, now = self.app, clock.now().timestamp()
        last, started = data.get("_last_seen"), data.get("_started")
        if (not isinstance(last, (int, float)) or not isinstance(started, (int, float))
                or now - last > app.config["PANEL_IDLE_TIMEOUT_MINUTES"] * 60
                or now - started > app.config["PANEL_ABSOLUTE_TIMEOUT_HOURS"] * 3600):
            return None  # Flask ends the session and answers 401
        company_id, until = int(found.group(1)), int(found.group(2))
        if now >= until:
            return None  # something shown changes with time by now
        try:
            versions = current(app, [(USER, uid), (COMPANY, company_id)])
        except DatabaseBusy:
            return None  # Flask answers 503 "busy" at once (versions.BUSY_HOLD)
        if versions is None:
            return None
        expected = etag(app, uid, company_id, versions, until)
        if not hmac.compare_digest(expected[2:], found.group(0).removeprefix("W/")):
            return None
        return [("ETag", expected), ("Cache-Control", "no-store"), ("Vary", "Cookie, HX-Request"),
                *fixed_headers(app)]


def install(app: Flask, path: str) -> None:
    """Answer current conditional polls of ``path`` in front of the Flask app."""
    app.wsgi_app = PollGate(app, app.wsgi_app, path)
