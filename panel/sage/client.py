"""The SageID OAuth 2.0 client: Login Now redirect and state (authlib), then the code exchange and the refresh call
at the token endpoint, each one bounded HTTP request (``http``) whose answer is checked (``tokens``).

authlib builds the authorization request and keeps its state, but does not make the token requests: its refresh
adds the configured scope (RFC 6749 §6 forbids scopes beyond the granted ones; strict providers answer
``invalid_scope``), and its HTTP calls have only per-read timeouts and no size cap.
"""
from __future__ import annotations

from authlib.integrations.flask_client import OAuth
from flask import current_app, session

from ..redis_conn import get_redis
from .http import HttpFailure, request
from .tokens import MAX_BODY_BYTES, TokenError, parse

STATE_TTL = 600  # seconds a Login Now may take before its state is forgotten


class CallbackError(Exception):
    """The sign-in could not be completed; ``message`` is safe to show, ``code`` is for the audit/log."""

    def __init__(self, code: str, message: str):
        super().__init__(code)
        self.code, self.message = code, message


class _StateCache:
    """authlib's state store in Redis: the PKCE verifier never reaches the browser, and each state works once."""

    prefix = "sage:oauth-state:"

    def get(self, key):
        return get_redis().get(self.prefix + key)

    def set(self, key, value, expires=None):
        get_redis().set(self.prefix + key, value, ex=int(expires or STATE_TTL))

    def delete(self, key):
        # GETDEL semantics: whoever deletes it first wins; a replayed callback finds nothing.
        return get_redis().delete(self.prefix + key)


def remote():
    """An authlib client for the configured provider (built per use: settings differ between apps in tests)."""
    cfg = current_app.config
    oauth = OAuth(current_app, cache=_StateCache())
    kwargs = {"scope": cfg["SAGE_SCOPES"]}
    if cfg["SAGE_USE_PKCE"]:
        kwargs["code_challenge_method"] = "S256"
    params = {}
    if cfg["SAGE_AUDIENCE"]:
        params["audience"] = cfg["SAGE_AUDIENCE"]
    if cfg["SAGE_PROMPT"]:
        params["prompt"] = cfg["SAGE_PROMPT"]  # e.g. "consent": some providers grant offline_access only then
    client = oauth.register(
        "sage",
        client_id=cfg["SAGE_CLIENT_ID"],
        client_secret=cfg["SAGE_CLIENT_SECRET"],
        authorize_url=cfg["SAGE_AUTHORIZE_URL"],
        authorize_params=params or None,
        client_kwargs=kwargs,
    )
    client.framework.expires_in = STATE_TTL
    return client


def authorize_redirect(redirect_uri: str):
    """Redirect to Sage ID's sign-in with a one-time state and (unless disabled) PKCE S256.

    ``redirect_uri`` is the exact callback URL registered with Sage ID.
    """
    return remote().authorize_redirect(redirect_uri)


PROVIDER_ERRORS = {
    "access_denied": "Access was not granted, so nothing was changed. Click Login Now to try again.",
    "login_required": "You were not signed in to Sage ID. Click Login Now to try again.",
    "consent_required": "Sage ID needs your consent. Click Login Now and choose Grant.",
}


def exchange_code(args, redirect_uri: str) -> dict:
    """Check the callback's state, then exchange its code for tokens; raises CallbackError on any failure."""
    client = remote()
    state = args.get("state", "")
    data = client.framework.get_state_data(session, state) if state else None
    if state:
        client.framework.clear_state_data(session, state)  # one-time, whatever happens next
    error = args.get("error")
    if error:
        message = PROVIDER_ERRORS.get(error, "Sage ID could not complete the sign-in, so nothing was changed.")
        raise CallbackError(error[:60], message)
    if not state or data is None:
        raise CallbackError("bad_state", "This sign-in link has expired or was already used. "
                                         "Nothing was changed. Click Login Now to start again.")
    if not args.get("code"):
        raise CallbackError("missing_code", "Sage ID did not send an authorization code. Nothing was changed.")
    form = {"grant_type": "authorization_code", "code": args["code"],
            "redirect_uri": data.get("redirect_uri") or redirect_uri}
    if data.get("code_verifier"):
        form["code_verifier"] = data["code_verifier"]
    try:
        return token_request(form, current_app.config["SAGE_SCOPES"])
    except TokenError as exc:
        if exc.code == "invalid_grant":
            raise CallbackError(exc.code, "That sign-in code was already used or has expired. "
                                          "Nothing was changed. Click Login Now to start again.") from exc
        if exc.code == "bad_answer" or exc.code.startswith("http_"):
            raise CallbackError(exc.code, "Sage ID could not be reached or gave an unexpected answer "
                                          f"({exc.description}). Nothing was changed. Please try again.") from exc
        raise CallbackError(exc.code, f"Sage ID refused the sign-in ({exc.reason()}). Nothing was changed. "
                                      "Please try again.") from exc
    except HttpFailure as exc:
        if exc.kind == "timeout":
            raise CallbackError("timeout", "Sage ID did not answer in time. Nothing was changed. "
                                           "Please try again in a moment.") from exc
        what = "answered with too much data" if exc.kind == "too_large" else "could not be reached"
        raise CallbackError(exc.kind, f"Sage ID could not be reached or gave an unexpected answer ({what}). "
                                      "Nothing was changed. Please try again.") from exc


def token_request(form: dict, requested_scope: str | None, deadline: float | None = None) -> dict:
    """POST ``form`` to the token endpoint (client_secret_post) within ``deadline`` seconds in total (default
    SAGE_HTTP_TIMEOUT); the checked answer, or TokenError / HttpFailure."""
    cfg = current_app.config
    form = dict(form, client_id=cfg["SAGE_CLIENT_ID"], client_secret=cfg["SAGE_CLIENT_SECRET"])
    reply = request("POST", cfg["SAGE_TOKEN_URL"], data=form, headers={"Accept": "application/json"},
                    deadline=deadline or cfg["SAGE_HTTP_TIMEOUT"], max_bytes=MAX_BODY_BYTES)
    return parse(reply.status, reply.body, requested_scope)


def refresh(refresh_token: str, deadline: float | None = None) -> dict:
    """Exchange a refresh token (call only under the refresh lock, within ``deadline``). No scope is sent, so the
    provider keeps the granted one (RFC 6749 §6); the answer's ``scope`` is None unless the provider states one."""
    return token_request({"grant_type": "refresh_token", "refresh_token": refresh_token}, None, deadline)
