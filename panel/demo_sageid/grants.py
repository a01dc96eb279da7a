"""Grants: authorization code with PKCE S256 required, and refresh tokens with rotation and reuse detection."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import current_app
from sqlalchemy import select

from .. import clock
from ..extensions import db
from .client import AUTH_METHODS, grant_lifetime
from .models import DemoAuthorizationCode, DemoToken, digest, revoke_family

CODE_LIFETIME = timedelta(seconds=60)


@dataclass(frozen=True)
class GrantContext:
    """What a token request acts for: the account and the consent (family) its tokens belong to."""

    account: str
    family_id: str
    consented_at: datetime
    grant_expires_at: datetime
    audience: str | None

    def seconds_left(self, now: datetime) -> int:
        """Whole seconds until the absolute end of the consent (never negative)."""
        return max(0, int((self.grant_expires_at - now).total_seconds()))


def _context(row: DemoAuthorizationCode | DemoToken) -> GrantContext:
    return GrantContext(row.account, row.family_id, row.consented_at, row.grant_expires_at, row.audience)


class S256CodeChallenge(CodeChallenge):
    """PKCE for every request, S256 only: a missing challenge, a missing method or "plain" is refused."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        """Require code_challenge with code_challenge_method=S256, then authlib's own checks."""
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        return super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """Codes live 60 seconds and are single-use; a replayed code revokes the tokens it produced."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def save_authorization_code(self, code: str, request) -> None:
        """Store the code's hash with the consent: its time, family and absolute end."""
        now = clock.now()
        data = request.payload.data
        db.session.add(DemoAuthorizationCode(
            code_hash=digest(code), client_id=request.client.get_client_id(), account=request.user,
            redirect_uri=request.payload.redirect_uri, scope=request.scope,
            audience=(data.get("audience") or None), code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"], family_id=secrets.token_hex(16),
            consented_at=now, expires_at=now + CODE_LIFETIME,
            grant_expires_at=now + grant_lifetime(current_app.config)))
        db.session.commit()

    def query_authorization_code(self, code: str, client) -> DemoAuthorizationCode | None:
        """The unexpired, unused code issued to ``client``; a used one revokes its family (RFC 6749 4.1.2)."""
        row = db.session.execute(select(DemoAuthorizationCode).filter_by(code_hash=digest(code))).scalar_one_or_none()
        if row is None or row.client_id != client.get_client_id():
            return None
        now = clock.now()
        if row.used_at is not None:
            revoke_family(row.family_id, now)
            return None
        return row if now < row.expires_at else None

    def authenticate_user(self, authorization_code: DemoAuthorizationCode) -> GrantContext:
        """Claim the code atomically (after PKCE passed) so two concurrent exchanges cannot both win."""
        claimed = (DemoAuthorizationCode.query
                   .filter(DemoAuthorizationCode.id == authorization_code.id, DemoAuthorizationCode.used_at.is_(None))
                   .update({DemoAuthorizationCode.used_at: clock.now()}, synchronize_session=False))
        if not claimed:
            db.session.rollback()
            raise InvalidGrantError("Invalid 'code' in request.")
        return _context(authorization_code)

    def delete_authorization_code(self, authorization_code: DemoAuthorizationCode) -> None:
        """Nothing to do: the code stays, marked used, so a replay is recognised."""


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Rotation: each refresh returns a new refresh token; presenting a rotated one revokes the whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> DemoToken | None:
        """The current refresh token of a consent that has not reached its absolute end."""
        row = db.session.execute(select(DemoToken).filter_by(refresh_token_hash=digest(refresh_token))).scalar_one_or_none()
        if row is None:
            return None
        now = clock.now()
        if row.refresh_used_at is not None:
            revoke_family(row.family_id, now)
            raise InvalidGrantError("Refresh token reuse detected: every token of this grant is now revoked.")
        if row.revoked_at is not None:
            raise InvalidGrantError("This grant has been revoked: sign in again.")
        if now >= row.grant_expires_at:
            raise InvalidGrantError("The grant has reached the end of its lifetime: sign in again.")
        return row

    def authenticate_user(self, refresh_token: DemoToken) -> GrantContext:
        """Claim the old refresh token atomically; losing the race counts as reuse."""
        now = clock.now()
        claimed = (DemoToken.query
                   .filter(DemoToken.id == refresh_token.id, DemoToken.refresh_used_at.is_(None),
                           DemoToken.revoked_at.is_(None))
                   .update({DemoToken.refresh_used_at: now}, synchronize_session=False))
        if not claimed:
            db.session.rollback()
            revoke_family(refresh_token.family_id, now)
            raise InvalidGrantError("Refresh token reuse detected: every token of this grant is now revoked.")
        return _context(refresh_token)

    def revoke_old_credential(self, refresh_token: DemoToken) -> None:
        """Nothing left to do: ``authenticate_user`` already marked the old refresh token used."""
