"""The Sage connection on the screen: Login Now, the Sage ID callback, Check connection, Disconnect, the audit list."""
from __future__ import annotations

import redis
from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from .. import audit, clock
from ..audit import Action
from ..auth import admin_required
from ..extensions import db, htmx
from ..localtime import format_local, plural
from ..render import CHANGED, fragment
from ..sage import api, check_state, client, store
from ..sage.check import Kind, Outcome, classify
from ..security import no_referrer
from ..sessions import poll_endpoint


def _redirect_uri() -> str:
    """The exact redirect URI registered with Sage ID."""
    return current_app.config["PANEL_BASE_URL"] + url_for("settings.callback")


ACTIVITY_FIRST, ACTIVITY_STEP, ACTIVITY_MAX = 5, 20, 200  # rows shown at first, added by "Show more", at most


def activity_limit(raw: str | None) -> int:
    """How many activity rows to show: ACTIVITY_FIRST unless the query asks for more (bounded)."""
    raw = (raw or "").strip()
    asked = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 5 else ACTIVITY_FIRST
    return min(max(asked, ACTIVITY_FIRST), ACTIVITY_MAX)


def activity_context(company_id: int, limit: int, first_new: int | None = None) -> dict:
    """The activity card's context: the newest ``limit`` events, whether there are more, and (after "Show more")
    which row is the first new one, so focus can move there."""
    found = audit.latest(company_id, limit + 1)
    return {"events": found[:limit], "activity_limit": limit, "activity_more": len(found) > limit,
            "activity_next": min(limit + ACTIVITY_STEP, ACTIVITY_MAX), "first_new": first_new}


@admin_required
@poll_endpoint
def audit_list():
    """The activity card: the newest events (5, or as many as "Show more" asked for)."""
    limit = activity_limit(request.args.get("limit"))
    if not htmx or htmx.boosted:
        return redirect(url_for("settings.sage", activity=limit, _anchor="audit-list"))
    shown = request.args.get("shown", "")
    first_new = int(shown) if shown.isascii() and shown.isdigit() and int(shown) < limit else None
    return fragment("settings/_audit.html", **activity_context(current_user.company_id, limit, first_new))


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
def connection_card():
    """The connection card as the token is now (after a Login Now, or a change made in another window)."""
    if not htmx or htmx.boosted:
        return redirect(url_for("settings.sage", _anchor="sage-connection"))
    company = current_user.company
    return fragment("settings/_connection.html", company=company, token=store.current(company.id))


AUTO_RETRIES = 5  # times the card asks again by itself while another request's refresh is in progress


def retry_attempt(raw: str | None) -> int:
    """Which automatic retry this check is (0 when a person pressed the button), bounded."""
    raw = (raw or "").strip()
    return min(int(raw), AUTO_RETRIES) if raw.isascii() and raw.isdigit() and len(raw) < 3 else 0


@admin_required
def check():
    """Check connection: GET /sites with the token; list the sites and companies, or show the error. While another
    request refreshes the token, say so and (a few times) ask again by itself."""
    company = current_user.company
    sites, error, pending = None, None, None
    attempt = retry_attempt(request.form.get("attempt"))
    outcome = None
    try:
        sites = api.sites(company.id)
        audit.record(company.id, Action.CONNECTION_CHECKED, f"OK: {plural(len(sites), 'site')}", actor=current_user)
        outcome = Outcome(Kind.OK, sites=len(sites))
    except api.RefreshPending as exc:
        pending = exc  # nothing was tried, so nothing is audited or stored
    except api.SageUnavailable as exc:
        error = exc.message
        audit.record(company.id, Action.CONNECTION_CHECKED, f"Failed: {exc.message}", actor=current_user)
        outcome = classify(exc)
    db.session.commit()
    if outcome is not None:
        # Stored like the daily check's (the widget's "Last checked"); alerts it calls for go with the next tick.
        token = store.current(company.id)
        check_state.record(company.id, outcome, token.generation if token else None, clock.now())
    if not htmx:
        message = pending.message if pending else error or f"Connection OK: {plural(len(sites), 'site')}."
        flash(message, "info" if pending else "error" if error else "success")
        return redirect(url_for("settings.sage"))
    retry = pending is not None and pending.automatic and attempt < AUTO_RETRIES
    return fragment("settings/_connection.html", trigger=None if pending else CHANGED, sites=sites,
                    check_error=error, pending=pending, retry_attempt=attempt + 1 if retry else None,
                    checked_at=clock.now(), company=company, token=store.current(company.id))


@admin_required
def disconnect():
    """Disconnect (confirmed in the page): remove the stored token; the card then says so and offers Login Now,
    and the widget and activity list refresh on the change event."""
    removed = store.disconnect(current_user.company, current_user)
    if not htmx:
        flash("Disconnected. The stored token was removed." if removed else "Sage was already disconnected.", "info")
        return redirect(url_for("settings.sage"))
    return fragment("settings/_connection.html", trigger=CHANGED, token=None, disconnected=removed,
                    company=current_user.company)
