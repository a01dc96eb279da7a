"""One-click unsubscribe (RFC 8058): signed links carrying user id + company id, and switching the person off."""
from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..audit import Action
from ..extensions import db
from ..models import User
from . import recipients

SALT = "panel.reminders.unsubscribe"
MAX_AGE_DAYS = 400  # links in old emails keep working for a good while; a year-old link still unsubscribes


def _serializer(secret_key: str | None = None) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key or current_app.config["SECRET_KEY"], salt=SALT)


def make_token(user: User) -> str:
    """A signed, URL-safe token naming ``user`` and their company."""
    return _serializer().dumps({"u": user.id, "c": user.company_id})


def unsubscribe_url(base_url: str, user: User) -> str:
    """The absolute one-click unsubscribe URL for ``user``."""
    return f"{base_url.rstrip('/')}/unsubscribe/{make_token(user)}"


def person_for(token: str) -> User | None:
    """The user a token names, or None when it is forged, tampered with, too old or names nobody."""
    if not token or len(token) > 500:
        return None
    try:
        data = _serializer().loads(token, max_age=MAX_AGE_DAYS * 86400)
    except BadSignature:  # also covers SignatureExpired and malformed payloads
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int) or not isinstance(data.get("c"), int):
        return None
    person = db.session.get(User, data["u"])
    # The company must match too: a token never reaches a user who has since been moved elsewhere.
    return person if person is not None and person.company_id == data["c"] else None


def unsubscribe(person: User) -> bool:
    """Switch ``person``'s reminders off; True when they were on. Audited as an unsubscribe."""
    return recipients.switch(person, False, None, action=Action.UNSUBSCRIBED, how=" (one-click unsubscribe link)")
