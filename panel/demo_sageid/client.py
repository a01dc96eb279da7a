"""The one client Demo SageID knows: the panel itself, derived from the app's configuration."""
from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Mapping

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from flask import current_app

CLIENT_ID = "sage-panel-demo"
CLIENT_NAME = "CRM Sage panel"
CALLBACK_PATH = "/settings/sage/callback"
SCOPES = ("openid", "profile", "email", "offline_access")
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token")


def client_secret(secret_key: str) -> str:
    """The demo client's secret: HMAC-SHA256 of SECRET_KEY, so client and server agree without storing it."""
    return hmac.new(secret_key.encode("utf-8"), b"demo-sageid client secret", hashlib.sha256).hexdigest()


def redirect_uri(config: Mapping) -> str:
    """The only redirect URI the demo client may use (compared exactly)."""
    return config["PANEL_BASE_URL"] + CALLBACK_PATH


def grant_lifetime(config: Mapping) -> timedelta:
    """How long a consent lasts: SAGE_DEMO_TOKEN_LIFETIME_MINUTES when > 0, else SAGE_TOKEN_LIFETIME_DAYS."""
    minutes = int(config.get("SAGE_DEMO_TOKEN_LIFETIME_MINUTES") or 0)
    if minutes > 0:
        return timedelta(minutes=minutes)
    return timedelta(days=int(config.get("SAGE_TOKEN_LIFETIME_DAYS") or 90))


class DemoClient(ClientMixin):
    """A confidential client: secret auth (basic or post), code + refresh grants, one exact redirect URI."""

    def __init__(self, config: Mapping):
        self.secret = client_secret(config["SECRET_KEY"])
        self.redirect_uri = redirect_uri(config)

    def get_client_id(self) -> str:
        """The client id."""
        return CLIENT_ID

    def get_default_redirect_uri(self) -> None:
        """None: the redirect URI must always be sent, and must match exactly."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client may have (all of them when none are requested)."""
        if not scope:
            return list_to_scope(list(SCOPES))
        return list_to_scope([s for s in scope_to_list(scope) if s in SCOPES])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string comparison, no prefix or pattern matching."""
        return hmac.compare_digest(redirect_uri.encode("utf-8"), self.redirect_uri.encode("utf-8"))

    def check_client_secret(self, client_secret: str) -> bool:
        """Constant-time comparison with the derived secret."""
        return hmac.compare_digest(client_secret.encode("utf-8"), self.secret.encode("utf-8"))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Only client_secret_basic and client_secret_post: a public client ("none") is refused."""
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        """Only the authorization code flow."""
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        """Authorization code and refresh token grants."""
        return grant_type in GRANT_TYPES


def query_client(client_id: str) -> DemoClient | None:
    """The demo client when ``client_id`` is its id and demo mode is active, else None."""
    config = current_app.config
    if client_id != CLIENT_ID or not config.get("SAGE_DEMO_ACTIVE"):
        return None
    return DemoClient(config)
