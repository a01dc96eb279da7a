"""One-click unsubscribe (RFC 8058): signed links naming user + company, and the small public blueprint they open.

GET only asks (or says "You're already unsubscribed"); POST (no cookies, no sign-in, no CSRF token: the signed
token is the proof) switches reminders off. Once off, the page offers to switch them back on: a button when the
person is signed in (the My notifications switch, CSRF-protected), a sign-in link otherwise.
"""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, render_template
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..audit import Action
from ..extensions import csrf, db
from ..models import User
from ..security import no_referrer
from .recipients import switch

bp = Blueprint("unsubscribe", __name__)

SALT = "panel.reminders.unsubscribe"
MAX_AGE_DAYS = 400  # links in old emails keep working for a good while; a year-old link still unsubscribes
FORGED = ("This unsubscribe link is not valid: it may have been changed or cut short. Nothing was changed. "
          "Copy the whole link from the email, or switch reminders off in My notifications after signing in.")


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
    return switch(person, False, None, action=Action.UNSUBSCRIBED, how=" (one-click unsubscribe link)")


def _page(status: int = 200, person: User | None = None, **ctx):
    no_referrer()  # the URL carries the signed token
    signed_in = person is not None and current_user.is_authenticated and current_user.id == person.id
    return render_template("reminders/unsubscribe.html", person=person, signed_in=signed_in, **ctx), status


@bp.route("/unsubscribe/<token>", methods=["GET"])
def confirm(token: str):
    """Show who would be unsubscribed and a button; a GET never changes anything (link scanners follow GETs)."""
    person = person_for(token)
    if person is None:
        return _page(400, error=FORGED)
    return _page(person=person, token=token, done=not person.notify_sage_token, changed=False)


@bp.route("/unsubscribe/<token>", methods=["POST"])
@csrf.exempt
def one_click(token: str):
    """RFC 8058 one-click unsubscribe (mail clients POST "List-Unsubscribe=One-Click"), and the page's button."""
    person = person_for(token)
    if person is None:
        return _page(400, error=FORGED)
    changed = unsubscribe(person)
    return _page(person=person, token=token, done=True, changed=changed)


def init_app(app: Flask) -> None:
    """Register the public unsubscribe pages."""
    app.register_blueprint(bp)
