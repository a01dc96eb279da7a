"""Authenticated encryption of token secrets at rest (Fernet: AES-CBC + HMAC-SHA256), with key rotation."""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class DecryptionError(RuntimeError):
    """A stored secret could not be decrypted with any configured key (wrong or removed key, or tampering)."""


def _fernet() -> MultiFernet:
    keys = current_app.config["PANEL_ENCRYPTION_KEYS"]
    # The first key encrypts; every key decrypts, so a new key can be put first and old ones phased out.
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(secret: str | None) -> str | None:
    """Encrypt ``secret`` with the current (first) key; None stays None."""
    if secret is None:
        return None
    return _fernet().encrypt(secret.encode()).decode()


def _with_keys(operation: str, stored: str | None) -> str | None:
    if stored is None:
        return None
    try:
        return getattr(_fernet(), operation)(stored.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored token cannot be decrypted with the configured keys") from exc


def decrypt(stored: str | None) -> str | None:
    """Decrypt a value made by ``encrypt``; raises DecryptionError when no key fits."""
    return _with_keys("decrypt", stored)


def rotate(stored: str | None) -> str | None:
    """Re-encrypt ``stored`` under the current (first) key."""
    return _with_keys("rotate", stored)
