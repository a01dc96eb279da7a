"""One-click unsubscribe pages: GET only asks, POST (no cookies, no sign-in, no CSRF token) switches off."""
from __future__ import annotations

from flask import render_template

from ..extensions import csrf
from ..security import no_referrer
from . import unsubscribe
from .views import bp

FORGED = ("This unsubscribe link is not valid: it may have been changed or cut short. Nothing was changed. "
          "Copy the whole link from the email, or switch reminders off in My notifications after signing in.")


def _page(status: int = 200, **ctx):
    no_referrer()  # the URL carries the signed token
    return render_template("reminders/unsubscribe.html", **ctx), status


@bp.route("/unsubscribe/<token>", methods=["GET"])
def unsubscribe_confirm(token: str):
    """Show who would be unsubscribed and a button; a GET never changes anything (link scanners follow GETs)."""
    person = unsubscribe.person_for(token)
    if person is None:
        return _page(400, error=FORGED)
    return _page(person=person, token=token, done=False)


@bp.route("/unsubscribe/<token>", methods=["POST"])
def unsubscribe_post(token: str):
    """RFC 8058 one-click unsubscribe (mail clients POST "List-Unsubscribe=One-Click"), and the page's button."""
    person = unsubscribe.person_for(token)
    if person is None:
        return _page(400, error=FORGED)
    changed = unsubscribe.unsubscribe(person)
    return _page(person=person, token=token, done=True, changed=changed)


def exempt_from_csrf() -> None:
    """The signed token is the proof here; a mail client's POST carries no session and no CSRF token."""
    csrf.exempt(unsubscribe_post)
