"""Sign-in and sign-out pages."""
from __future__ import annotations

import functools
import logging

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .. import clock, events
from ..extensions import db
from ..localtime import plural
from ..models import User
from ..sessions import end_all, end_current, start
from .guards import safe_next
from .throttle import address_key, claim, limits, pair_key, succeeded, try_again

bp = Blueprint("auth", __name__)


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the email is unknown, so a miss costs as much time as a wrong password."""
    return generate_password_hash("not-a-real-password")


def _form(status: int = 200, error: str | None = None, email: str = "", next_url: str | None = None):
    return render_template("auth/login.html", error=error, email=email, next_url=next_url), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form; on POST check the password, throttle failures and start a fresh session."""
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("settings.sage"))
    if request.method != "POST":
        return _form(next_url=next_url)

    email = request.form.get("email", "").strip().lower()
    password = request.form.get("password", "")
    if not email or not password:
        return _form(400, "Enter your email address and password.", email[:254], next_url)
    if len(email) > 254 or len(password) > 1024:
        return _form(400, "Email or password is incorrect.", "", next_url)

    pair, address = pair_key(email, request.remote_addr), address_key(request.remote_addr)
    # Claimed before the password is checked: parallel guesses each take their own place in the count.
    wait = claim(pair, address, clock.now(), limits(current_app.config))
    if wait:
        events.emit(events.SIGN_IN_LOCKED, address=request.remote_addr, wait_seconds=wait, level=logging.WARNING)
        return _form(429, try_again(wait), email, next_url)

    user = db.session.execute(select(User).filter_by(email=email)).scalar_one_or_none()
    ok = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    if not (user and ok and user.active):
        return _form(401, "Email or password is incorrect.", email, next_url)

    succeeded(pair, address)
    start(user)  # a fresh server-side session; the cookie is cleared and holds only its id
    return redirect(next_url or url_for("settings.sage"))


def _signed_out(message: str):
    flash(message, "info")
    return redirect(url_for("auth.login"))


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out: the session's server-side record is deleted, so a copy of the cookie stops working too."""
    end_current()
    return _signed_out("You have been signed out.")


@bp.route("/logout/everywhere", methods=["POST"])
@login_required
def logout_everywhere():
    """Sign out everywhere: end every session of the signed-in person, this one included."""
    ended = end_all(current_user.id)
    end_current()
    return _signed_out(f"You have been signed out everywhere ({plural(ended, 'session')} ended).")
