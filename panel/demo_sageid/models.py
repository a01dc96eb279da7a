"""Demo SageID storage: authorization codes and issued tokens, kept only as SHA-256 hashes."""
from __future__ import annotations

import hashlib
from datetime import datetime

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, TokenMixin
from sqlalchemy import update

from .. import clock
from ..extensions import db
from ..models import UTCDateTime


def digest(secret: str) -> str:
    """SHA-256 hex of a code or token: what the tables store instead of the secret itself."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class DemoAuthorizationCode(db.Model, AuthorizationCodeMixin):
    """One authorization code. Kept after use (``used_at``) so a replay is recognised and revokes its tokens."""

    __tablename__ = "demo_sageid_code"
    id = db.Column(db.Integer, primary_key=True)
    code_hash = db.Column(db.String(64), nullable=False, unique=True)
    client_id = db.Column(db.String(100), nullable=False)
    account = db.Column(db.String(254), nullable=False)
    redirect_uri = db.Column(db.String(500), nullable=False)
    scope = db.Column(db.String(500), nullable=False)
    audience = db.Column(db.String(200), nullable=True)
    code_challenge = db.Column(db.String(128), nullable=False)
    code_challenge_method = db.Column(db.String(10), nullable=False)
    family_id = db.Column(db.String(32), nullable=False)
    consented_at = db.Column(UTCDateTime, nullable=False)
    expires_at = db.Column(UTCDateTime, nullable=False)
    grant_expires_at = db.Column(UTCDateTime, nullable=False)
    used_at = db.Column(UTCDateTime, nullable=True)

    def get_redirect_uri(self) -> str:
        """The redirect URI the code was issued for; the token request must repeat it exactly."""
        return self.redirect_uri

    def get_scope(self) -> str:
        """The granted scope."""
        return self.scope


class DemoToken(db.Model, TokenMixin):
    """One issued access/refresh token pair; every pair of one consent shares a ``family_id``."""

    __tablename__ = "demo_sageid_token"
    id = db.Column(db.Integer, primary_key=True)
    family_id = db.Column(db.String(32), nullable=False, index=True)
    client_id = db.Column(db.String(100), nullable=False)
    account = db.Column(db.String(254), nullable=False)
    scope = db.Column(db.String(500), nullable=False)
    audience = db.Column(db.String(200), nullable=True)
    access_token_hash = db.Column(db.String(64), nullable=False, unique=True)
    refresh_token_hash = db.Column(db.String(64), nullable=True, unique=True)
    issued_at = db.Column(UTCDateTime, nullable=False)
    access_expires_at = db.Column(UTCDateTime, nullable=False)
    consented_at = db.Column(UTCDateTime, nullable=False)
    grant_expires_at = db.Column(UTCDateTime, nullable=False)
    # Set when this row's refresh token was exchanged (rotated); presenting it again is reuse.
    refresh_used_at = db.Column(UTCDateTime, nullable=True)
    # Set when the whole row is revoked (reuse detected, or its code was replayed).
    revoked_at = db.Column(UTCDateTime, nullable=True)

    def check_client(self, client) -> bool:
        """True when the token was issued to ``client``."""
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        """The granted scope."""
        return self.scope

    def get_expires_in(self) -> int:
        """Lifetime of the access token in seconds."""
        return int((self.access_expires_at - self.issued_at).total_seconds())

    def is_expired(self) -> bool:
        """True once the access token's expiry has passed (by ``panel.clock``)."""
        return clock.now() >= self.access_expires_at

    def is_revoked(self) -> bool:
        """True when the token has been revoked."""
        return self.revoked_at is not None

    def get_user(self) -> str:
        """The demo account the token acts for."""
        return self.account


def revoke_family(family_id: str, at: datetime) -> int:
    """Revoke every token of one consent (reuse detection); commits; returns how many rows changed."""
    count = db.session.execute(
        update(DemoToken).where(DemoToken.family_id == family_id, DemoToken.revoked_at.is_(None))
        .values(revoked_at=at).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return count
