"""The SageID OAuth 2.0 client (authlib): Login Now redirect, code exchange, and the refresh call."""
from __future__ import annotations

import json

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import current_app, session

from ..redis_conn import get_redis

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
    kwargs = {"scope": cfg["SAGE_SCOPES"], "default_timeout": cfg["SAGE_HTTP_TIMEOUT"],
              "token_endpoint_auth_method": "client_secret_post"}
    if cfg["SAGE_USE_PKCE"]:
        kwargs["code_challenge_method"] = "S256"
    client = oauth.register(
        "sage",
        client_id=cfg["SAGE_CLIENT_ID"],
        client_secret=cfg["SAGE_CLIENT_SECRET"],
        authorize_url=cfg["SAGE_AUTHORIZE_URL"],
        access_token_url=cfg["SAGE_TOKEN_URL"],
        authorize_params={"audience": cfg["SAGE_AUDIENCE"]} if cfg["SAGE_AUDIENCE"] else None,
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
    params = {"code": args["code"], "redirect_uri": data.get("redirect_uri") or redirect_uri}
    if data.get("code_verifier"):
        params["code_verifier"] = data["code_verifier"]
    try:
        token = client.fetch_access_token(**params)
    except AuthlibBaseError as exc:
        code = getattr(exc, "error", None) or "token_error"
        if code == "invalid_grant":
            raise CallbackError(code, "That sign-in code was already used or has expired. "
                                      "Nothing was changed. Click Login Now to start again.") from exc
        raise CallbackError(code, "Sage ID refused the sign-in. Nothing was changed. Please try again.") from exc
    except requests.Timeout as exc:
        raise CallbackError("timeout", "Sage ID did not answer in time. Nothing was changed. "
                                       "Please try again in a moment.") from exc
    except (requests.RequestException, ValueError, json.JSONDecodeError) as exc:
        raise CallbackError("token_endpoint", "Sage ID could not be reached or gave an unexpected answer. "
                                              "Nothing was changed. Please try again.") from exc
    if not token.get("access_token"):
        raise CallbackError("no_access_token", "Sage ID's answer had no access token. Nothing was changed.")
    return dict(token)


def refresh(refresh_token: str) -> dict:
    """Exchange a refresh token at the token endpoint (call only under the refresh lock)."""
    return dict(remote().fetch_access_token(grant_type="refresh_token", refresh_token=refresh_token))
