"""Demo SageID pages and endpoints: authorize (sign in, consent), token, and the Sage 200-like /api/sites."""
from __future__ import annotations

import hmac
import time

import redis
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import MissingAuthorizationError, UnsupportedTokenTypeError
from flask import Blueprint, Response, current_app, json, jsonify, redirect, render_template, request, session

from ..extensions import csrf
from ..redis_conn import get_redis
from ..security import no_referrer
from .client import CLIENT_NAME, grant_lifetime
from .content import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SITES, describe_lifetime, scope_items
from .grants_list import active_grants, revoke_grant
from .server import REALM, require_oauth

bp = Blueprint("demo_sageid", __name__, url_prefix="/demo-sageid")

SESSION_KEY = "demo_sageid_account"  # the demo SageID sign-in, separate from the panel's own login
TOKEN_COUNTER = "demo_sageid:token_requests"


@bp.before_request
def _no_referrer() -> None:
    no_referrer()


def _server() -> AuthorizationServer:
    return current_app.extensions["demo_sageid"]


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    """Validate the request, then sign in, then ask for consent; Grant issues a code, Deny returns access_denied."""
    server = _server()
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as err:
        if err.redirect_uri:  # the redirect URI was checked: tell the client, as RFC 6749 4.1.2.1 says
            return server.handle_error_response(None, err)
        return render_template("demo_sageid/error.html", error=err.error, description=err.description), 400

    action = request.form.get("action") if request.method == "POST" else None
    if action == "sign_in":
        return _sign_in()
    account = session.get(SESSION_KEY)
    if account is None:
        return render_template("demo_sageid/sign_in.html", email="", error=None, **_demo_account())
    if action == "switch":
        session.pop(SESSION_KEY, None)
        return redirect(request.full_path, 303)
    if action in ("grant", "deny"):
        return server.create_authorization_response(grant=grant, grant_user=account if action == "grant" else None)
    return render_template(
        "demo_sageid/consent.html", account=account, client_name=CLIENT_NAME,
        audience=request.values.get("audience", "").strip()[:200] or None,
        items=scope_items(grant.request.scope), lifetime=describe_lifetime(grant_lifetime(current_app.config)))


def _demo_account() -> dict:
    return {"demo_email": DEMO_EMAIL, "demo_password": DEMO_PASSWORD}


def _sign_in():
    """Check the demo account's credentials; success keeps the OAuth request and shows the consent page."""
    email = request.form.get("email", "").strip().lower()
    password = request.form.get("password", "")
    ok_email = hmac.compare_digest(email.encode("utf-8"), DEMO_EMAIL.encode("utf-8"))
    ok_password = hmac.compare_digest(password.encode("utf-8"), DEMO_PASSWORD.encode("utf-8"))
    if not (ok_email and ok_password):
        error = "Email or password is incorrect. Use the demo account shown above."
        return render_template("demo_sageid/sign_in.html", email=email[:254], error=error, **_demo_account()), 401
    session[SESSION_KEY] = DEMO_EMAIL
    return redirect(request.full_path, 303)


@bp.route("/oauth/token", methods=["POST"])
@csrf.exempt
def token():
    """The token endpoint: authorization_code (PKCE S256) and refresh_token (rotating) grants."""
    try:
        get_redis(current_app).incr(TOKEN_COUNTER)
    except redis.RedisError:  # counting is for tests and demos; never fail a token request for it
        current_app.logger.warning("demo SageID: could not count a token request in Redis")
    delay = float(current_app.config.get("SAGE_DEMO_TOKEN_DELAY", 0) or 0)
    if delay > 0:
        time.sleep(delay)  # simulates a slow provider
    return _server().create_token_response()


@bp.route("/api/sites")
def sites():
    """Sage 200's GET /sites: the demo sites and companies, for a valid bearer access token."""
    try:
        require_oauth.acquire_token()
    except (MissingAuthorizationError, UnsupportedTokenTypeError):
        # RFC 6750 3.1: no credentials at all -> a bare challenge without an error code.
        resp = jsonify({"message": "A bearer access token is required."})
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
        return resp
    except OAuth2Error as err:
        status, body, headers = err()
        return Response(json.dumps(body), status=status, headers=headers)
    return jsonify(DEMO_SITES)


@bp.route("/apps", methods=["GET", "POST"])
def apps():
    """Connected apps, as Sage ID's account pages have them: the grants of the signed-in account, each revocable."""
    if request.method == "POST" and request.form.get("action") == "sign_in":
        return _sign_in()
    account = session.get(SESSION_KEY)
    if account is None:
        return render_template("demo_sageid/sign_in.html", email="", error=None, **_demo_account())
    revoked = None
    if request.method == "POST" and request.form.get("action") == "revoke":
        revoked = revoke_grant(account, request.form.get("grant", ""))
    return render_template("demo_sageid/apps.html", account=account, client_name=CLIENT_NAME,
                           grants=active_grants(account), revoked=revoked)
