"""The Sage connection on the screen: Login Now, the Sage ID callback, Check connection, Disconnect, the audit list."""
from __future__ import annotations

import redis
from flask import (
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from .. import audit, clock
from ..audit import Action
from ..auth import admin_required
from ..extensions import db, htmx
from ..localtime import format_local, plural
from ..render import CHANGED, fragment
from ..sage import api, client, store
from ..security import no_referrer
from ..sessions import poll_endpoint
from .presenter import widget_context


def _redirect_uri() -> str:
    """The exact redirect URI registered with Sage ID."""
    return current_app.config["PANEL_BASE_URL"] + url_for("settings.callback")


@admin_required
@poll_endpoint
def audit_list():
    """The latest 20 audit events."""
    return fragment("settings/_audit.html", events=audit.latest(current_user.company_id))


@admin_required
def connect():
    """Login Now: start the Sage ID sign-in (in the popup window, or in this window when popups are blocked)."""
    session["sage_login_popup"] = request.args.get("popup") == "1"
    try:
        return client.authorize_redirect(_redirect_uri())
    except redis.RedisError:
        return _callback_result(False, "Sign-in can't start because Redis (which keeps the sign-in state) is "
                                       "unavailable. Nothing was changed. Please try again shortly.")


@admin_required
def callback():
    """Where Sage ID sends the browser back: exchange the code, store the token, tell the opener."""
    no_referrer()  # the URL carries the authorization code
    try:
        response = client.exchange_code(request.args, _redirect_uri())
    except client.CallbackError as err:
        current_app.logger.warning("Sage ID callback failed: %s (company %s)", err.code, current_user.company_id)
        return _callback_result(False, err.message)
    except redis.RedisError:
        return _callback_result(False, "The sign-in could not be checked because Redis is unavailable. "
                                       "Nothing was changed. Please try again shortly.")
    token = store.save_new(current_user.company, current_user, response, clock.now())
    expires = format_local(token.expires_at, current_user.company.timezone)
    return _callback_result(True, f"Connected to Sage. The token expires {expires}.")


def _callback_result(ok: bool, message: str):
    popup = session.pop("sage_login_popup", False)
    if popup:
        return render_template("settings/callback.html", ok=ok, message=message), (200 if ok else 400)
    flash(message, "success" if ok else "error")
    return redirect(url_for("settings.sage"))


@admin_required
def check():
    """Check connection: GET /sites with the token; list the sites and companies, or show the error."""
    company = current_user.company
    sites, error = None, None
    try:
        sites = api.sites(company.id)
        audit.record(company.id, Action.CONNECTION_CHECKED, f"OK: {plural(len(sites), 'site')}", actor=current_user)
    except api.SageUnavailable as exc:
        error = exc.message
        audit.record(company.id, Action.CONNECTION_CHECKED, f"Failed: {exc.message}", actor=current_user)
    db.session.commit()
    if not htmx:
        flash(error or f"Connection OK: {plural(len(sites), 'site')}.", "error" if error else "success")
        return redirect(url_for("settings.sage"))
    return fragment("settings/_connection.html", trigger=CHANGED, sites=sites, check_error=error,
                    checked_at=clock.now(), company=company, token=store.current(company.id))


@admin_required
def disconnect():
    """Disconnect (confirmed in the page): remove the stored token."""
    removed = store.disconnect(current_user.company, current_user)
    if not htmx:
        flash("Sage was disconnected." if removed else "Sage was not connected.", "info")
        return redirect(url_for("settings.sage"))
    return fragment("settings/_token_widget.html", trigger=CHANGED, **widget_context(current_user.company))
