"""Views of the Sage settings screen: page, widget, Login Now, callback, connection check, disconnect."""
from __future__ import annotations

import redis
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from .. import audit, clock
from ..audit import Action
from ..auth import admin_required
from ..extensions import htmx
from ..partials import CHANGED, fragment
from ..reminders import views as reminder_views
from ..security import no_referrer
from ..sessions import poll_endpoint
from . import api, client, store, widget_cache
from .presenter import widget_context

bp = Blueprint("sage", __name__)


@bp.route("/")
def index():
    """The panel's home is the Sage settings screen."""
    return redirect(url_for("sage.settings"))


@bp.route("/settings/sage")
@login_required
def settings():
    """Settings › Sage: the token widget, reminder settings, recipients and the audit list."""
    company = current_user.company
    ctx = widget_context(company)
    ctx.update(reminder_views.context_for(company, current_user))
    ctx["events"] = audit.latest(company.id) if current_user.is_admin else []
    return render_template("settings/sage.html", **ctx)


@bp.route("/settings/sage/widget")
@poll_endpoint
def widget():
    """The token widget partial, polled every 60 s (answered from a short cache) and refreshed on change events."""
    if request.headers.get("X-Panel-Poll") == "1":
        cached = widget_cache.lookup(current_app, session.get("_user_id"))
        if cached is not None:
            resp = current_app.response_class(cached, mimetype="text/html")
            resp.headers["Vary"] = "HX-Request"
            return resp
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    resp = fragment("settings/_token_widget.html", **widget_context(current_user.company))
    widget_cache.store(current_app, current_user, resp.get_data())
    return resp


@bp.route("/settings/sage/audit")
@admin_required
@poll_endpoint
def audit_list():
    """The latest 20 audit events."""
    return fragment("settings/_audit.html", events=audit.latest(current_user.company_id))


@bp.route("/settings/sage/connect")
@admin_required
def connect():
    """Login Now: start the Sage ID sign-in (in the popup window, or in this window when popups are blocked)."""
    session["sage_login_popup"] = request.args.get("popup") == "1"
    try:
        return client.authorize_redirect()
    except redis.RedisError:
        return _callback_result(False, "Sign-in can't start because Redis (which keeps the sign-in state) is "
                                       "unavailable. Nothing was changed. Please try again shortly.")


@bp.route("/settings/sage/callback")
@admin_required
def callback():
    """Where Sage ID sends the browser back: exchange the code, store the token, tell the opener."""
    no_referrer()  # the URL carries the authorization code
    try:
        response = client.exchange_code(request.args)
    except client.CallbackError as err:
        current_app.logger.warning("Sage ID callback failed: %s (company %s)", err.code, current_user.company_id)
        return _callback_result(False, err.message)
    except redis.RedisError:
        return _callback_result(False, "The sign-in could not be checked because Redis is unavailable. "
                                       "Nothing was changed. Please try again shortly.")
    token = store.save_new(current_user.company, current_user, response, clock.now())
    from .status import format_local

    message = (f"Connected to Sage. The token expires {format_local(token.expires_at, current_user.company.timezone)}.")
    return _callback_result(True, message)


def _callback_result(ok: bool, message: str):
    popup = session.pop("sage_login_popup", False)
    if popup:
        return render_template("sage/callback.html", ok=ok, message=message), (200 if ok else 400)
    flash(message, "success" if ok else "error")
    return redirect(url_for("sage.settings"))


@bp.route("/settings/sage/check", methods=["POST"])
@admin_required
def check():
    """Check connection: GET /sites with the token; list the sites and companies, or show the error."""
    company = current_user.company
    sites, error = None, None
    try:
        sites = api.sites(company.id)
        audit.record(company.id, Action.CONNECTION_CHECKED, f"OK: {len(sites)} site(s)", actor=current_user)
    except api.SageUnavailable as exc:
        error = exc.message
        audit.record(company.id, Action.CONNECTION_CHECKED, f"Failed: {exc.message}", actor=current_user)
    from ..extensions import db

    db.session.commit()
    if not htmx:
        flash(error or f"Connection OK: {len(sites)} site(s).", "error" if error else "success")
        return redirect(url_for("sage.settings"))
    return fragment("settings/_connection.html", trigger=CHANGED, sites=sites, check_error=error,
                     checked_at=clock.now(), company=company)


@bp.route("/settings/sage/disconnect", methods=["POST"])
@admin_required
def disconnect():
    """Disconnect (confirmed in the page): remove the stored token."""
    removed = store.disconnect(current_user.company, current_user)
    if not htmx:
        flash("Sage was disconnected." if removed else "Sage was not connected.", "info")
        return redirect(url_for("sage.settings"))
    return fragment("settings/_token_widget.html", trigger=CHANGED, **widget_context(current_user.company))
