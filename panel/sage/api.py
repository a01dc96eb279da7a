"""Every call to the Sage API goes through here: it refreshes the access token single-flight across processes."""
from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

import redis
from flask import current_app

from .. import clock, events
from ..crypto import DecryptionError, decrypt
from ..extensions import db
from ..models import TokenState
from ..redis_conn import get_redis
from . import client, store
from .http import HttpFailure, Reply, request
from .tokens import TokenError

EARLY = timedelta(seconds=60)  # refresh this long before the access token runs out
MAX_API_BYTES = 1024 * 1024    # a Sage API answer we read (GET /sites lists a few sites and companies)


class SageUnavailable(Exception):
    """The Sage API cannot be called now; ``message`` is safe to show. ``status`` is the API's HTTP status when it
    answered with an error, ``detail`` its own reason (printable, bounded) when it gave one."""

    def __init__(self, message: str, needs_login: bool = False, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.message, self.needs_login, self.status, self.detail = message, needs_login, status, detail


def _usable(token) -> bool:
    return (token.access_token_enc is not None and token.access_expires_at is not None
            and token.access_expires_at - EARLY > clock.now())


def _check(token) -> None:
    if token is None:
        raise SageUnavailable("Sage is not connected. An admin needs to click Login Now.", needs_login=True)
    if token.state == TokenState.NEEDS_LOGIN.value:
        raise SageUnavailable(f"The Sage token needs a new Login Now: {token.state_reason}", needs_login=True)
    if clock.now() >= token.expires_at:
        raise SageUnavailable("The Sage token has expired. An admin needs to click Login Now.", needs_login=True)


def access_token(company_id: int) -> str:
    """A valid access token for the company, refreshing it (once, under a Redis lock) when needed."""
    token = store.current(company_id)
    _check(token)
    if _usable(token):
        return decrypt(token.access_token_enc)
    timeout = current_app.config["SAGE_HTTP_TIMEOUT"]
    _release_connection()  # never hold a pooled DB connection while waiting for the lock
    lock = get_redis().lock(f"sage:refresh-lock:{company_id}", timeout=timeout * 3, blocking_timeout=timeout * 2 + 5)
    try:
        acquired = lock.acquire()
    except redis.RedisError as exc:
        raise SageUnavailable("The token could not be refreshed because Redis is unavailable.") from exc
    if not acquired:
        raise SageUnavailable("Another refresh of the Sage token is taking too long. Please try again.")
    try:
        token = store.current(company_id)  # re-read: another process may have refreshed while we waited
        _check(token)
        if _usable(token):
            return decrypt(token.access_token_enc)
        return _refresh(token)
    finally:
        # An expired or lost lock is fine to ignore: the compare-and-swap save still protects the token.
        with contextlib.suppress(redis.RedisError):
            lock.release()


def _release_connection() -> None:
    """End the session's transaction so its connection goes back to the pool (pending changes are committed)."""
    db.session.commit()


def _refresh(token) -> str:
    try:
        return _refresh_once(token)
    except SageUnavailable as exc:
        events.emit(events.REFRESH_FAILED, company_id=token.company_id, generation=token.generation,
                    needs_login=exc.needs_login, reason=exc.message, level=logging.WARNING)
        raise


def _refresh_once(token) -> str:
    try:
        refresh_token = decrypt(token.refresh_token_enc)
    except DecryptionError as exc:
        store.mark_needs_login(token, "The stored token cannot be decrypted with the configured keys.")
        raise SageUnavailable("The stored Sage token cannot be decrypted: an admin needs to click Login Now.",
                              needs_login=True) from exc
    if not refresh_token:
        store.mark_needs_login(token, "Sage ID gave no refresh token (is offline_access granted?).")
        raise SageUnavailable("The Sage token cannot be refreshed: an admin needs to click Login Now.", True)
    now = clock.now()
    _release_connection()  # and not during the network call either
    try:
        response = client.refresh(refresh_token)
    except TokenError as exc:
        if exc.terminal:  # retrying cannot fix it (invalid_grant, invalid_scope, …): only a new Login Now can
            reason = f"Sage ID refused the refresh ({exc.reason()})."
            store.mark_needs_login(token, reason[:500])
            raise SageUnavailable(f"The Sage token needs a new Login Now: {reason}", needs_login=True) from exc
        raise SageUnavailable(f"Sage ID could not refresh the token ({exc.reason()}). Please try again.") from exc
    except HttpFailure as exc:
        what = {"timeout": "did not answer in time", "too_large": "answered with too much data"}.get(
            exc.kind, "could not be reached")
        raise SageUnavailable(f"Sage ID {what} to refresh the token. Please try again.") from exc
    if not store.save_refreshed(token, response, now):
        # A new Login Now replaced the token while we refreshed: use whatever is current now.
        fresh = store.current(token.company_id)
        _check(fresh)
        return decrypt(fresh.access_token_enc)
    return response["access_token"]


def get(company_id: int, path: str) -> Reply:
    """GET ``SAGE_API_BASE + path`` with the company's token; raises SageUnavailable when it cannot."""
    cfg = current_app.config
    headers = {"Authorization": f"Bearer {access_token(company_id)}", "Accept": "application/json"}
    try:
        resp = request("GET", cfg["SAGE_API_BASE"] + path, headers=headers, deadline=cfg["SAGE_HTTP_TIMEOUT"],
                       max_bytes=MAX_API_BYTES)
    except HttpFailure as exc:
        if exc.kind == "timeout":
            raise SageUnavailable("The Sage API did not answer in time.") from exc
        if exc.kind == "too_large":
            raise SageUnavailable("The Sage API answered with more data than expected.") from exc
        raise SageUnavailable("The Sage API could not be reached.") from exc
    if resp.status == 401:
        raise SageUnavailable("The Sage API refused the token (401). Try Login Now if this persists.",
                              status=401, detail=error_detail(resp))
    if resp.status >= 400:
        raise SageUnavailable(f"The Sage API answered with an error ({resp.status}).", status=resp.status,
                              detail=error_detail(resp))
    return resp


def error_detail(resp: Reply) -> str:
    """The reason an error answer gives (``error_description``, ``message`` or ``error``), printable, or ""."""
    try:
        data = resp.json()
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # some gateways answer with a list of errors
    if not isinstance(data, dict):
        return ""
    for key in ("error_description", "message", "Message", "error"):
        text = " ".join(str(data.get(key) or "").split())
        if text:
            return "".join(c for c in text if c.isprintable())[:300]
    return ""


def sites(company_id: int) -> list[dict]:
    """The Sage 200 sites and companies the token can reach (GET /sites)."""
    resp = get(company_id, "/sites")
    try:
        data = resp.json()
    except ValueError as exc:
        raise SageUnavailable("The Sage API answered with something that is not JSON.") from exc
    if isinstance(data, dict):  # some gateways wrap lists
        data = data.get("items") or data.get("sites") or []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
