"""The authlib authorization server and resource protector behind Demo SageID."""
from __future__ import annotations

from datetime import timedelta

from authlib.common.security import generate_token as random_token
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from flask import current_app
from sqlalchemy import select

from .. import clock
from ..extensions import db
from .client import SCOPES, query_client
from .grants import AuthorizationCodeGrant, GrantContext, RefreshTokenGrant, S256CodeChallenge
from .models import DemoToken, digest

REALM = "demo-sageid"


def _access_seconds(client, grant_type: str) -> int:
    return int(current_app.config.get("SAGE_DEMO_ACCESS_TOKEN_SECONDS", 480))


_bearer = BearerTokenGenerator(
    access_token_generator=lambda **_: random_token(42),
    refresh_token_generator=lambda **_: random_token(48),
    expires_generator=_access_seconds,
)


def generate_token(grant_type: str, client, user: GrantContext | None = None, scope: str | None = None,
                   expires_in: int | None = None, include_refresh_token: bool = True) -> dict:
    """A bearer token response, plus ``refresh_token_expires_in``: seconds left of the consent's absolute life."""
    token = _bearer(grant_type, client, user, scope, expires_in, include_refresh_token)
    if user is not None and "refresh_token" in token:
        token["refresh_token_expires_in"] = user.seconds_left(clock.now())
    return token


def save_token(token: dict, request) -> None:
    """Store hashes of the new tokens in the family of the consent they continue."""
    ctx: GrantContext = request.user
    now = clock.now()
    refresh = token.get("refresh_token")
    db.session.add(DemoToken(
        family_id=ctx.family_id, client_id=request.client.get_client_id(), account=ctx.account,
        scope=token.get("scope", ""), audience=ctx.audience, access_token_hash=digest(token["access_token"]),
        refresh_token_hash=digest(refresh) if refresh else None, issued_at=now,
        access_expires_at=now + timedelta(seconds=token.get("expires_in", 0)),
        consented_at=ctx.consented_at, grant_expires_at=ctx.grant_expires_at))
    db.session.commit()


def create_server() -> AuthorizationServer:
    """A new authorization server (one per app): code grant with PKCE S256 required, rotating refresh grant."""
    server = AuthorizationServer(query_client=query_client, save_token=save_token)
    server.scopes_supported = list(SCOPES)
    server.register_token_generator("default", generate_token)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    return server


class DemoBearerTokenValidator(BearerTokenValidator):
    """Finds access tokens by hash; authlib then refuses expired and revoked ones."""

    def authenticate_token(self, token_string: str) -> DemoToken | None:
        """The stored token whose access token hashes to ``token_string``'s hash."""
        return db.session.execute(select(DemoToken).filter_by(access_token_hash=digest(token_string))).scalar_one_or_none()


require_oauth = ResourceProtector()
require_oauth.register_token_validator(DemoBearerTokenValidator(realm=REALM))
