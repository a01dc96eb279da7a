"""A valid access token for a company: refreshed single-flight across processes and hosts, in a way that cannot
burn the grant when Sage ID rotates refresh tokens and detects their reuse.

- One refresh at a time per company, under a Redis lock whose term always outlasts everything its holder does
  with the refresh token: re-read it (a database lock wait at most), send the token request (its TOTAL deadline is
  at most SAGE_HTTP_TIMEOUT, and is cut so that it ends a margin before the term does), save the answer. So no
  second refresh can start while the first may still succeed.
- Nobody waits long for it: a request that finds the lock held waits at most LOCK_WAIT for the holder's result,
  then is told "a refresh is in progress" (RefreshPending) and asks again a moment later (the page does).
- An unknown outcome — the request may have reached Sage ID but no usable answer came back (a timeout after
  sending, a broken, oversized or non-OAuth answer, or the new token could not be saved) — keeps the lock for one
  more whole term: Sage ID may have rotated the refresh token, and presenting the old one again while its answer
  might still be on the way is reuse. It is reported as unknown; the next try comes after the term.
"""
from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta

import redis
from flask import current_app

from .. import clock, events
from ..crypto import DecryptionError, decrypt
from ..extensions import db
from ..localtime import plural
from ..models import TokenState
from ..redis_conn import get_redis
from . import client, store
from .http import HttpFailure
from .tokens import TokenError

EARLY = timedelta(seconds=60)  # refresh this long before the access token runs out
LOCK_WAIT = 1.5                # seconds a request waits for another one's refresh before answering "in progress"
MARGIN = 5.0                   # seconds of the term kept free after the token request's deadline (the save)
IN_PROGRESS_RETRY = 2          # seconds after which the page asks again while a refresh is in progress


class SageUnavailable(Exception):
    """The Sage API cannot be called now; ``message`` is safe to show. ``status`` is the API's HTTP status when it
    answered with an error, ``detail`` its own reason (printable, bounded) when it gave one."""

    def __init__(self, message: str, needs_login: bool = False, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.message, self.needs_login, self.status, self.detail = message, needs_login, status, detail


class RefreshPending(SageUnavailable):
    """Another request's refresh is under way (or its outcome is unknown): ask again in ``retry_after`` seconds;
    ``automatic`` is False when the next try should be a person's choice (after an unknown outcome)."""

    def __init__(self, message: str, retry_after: int, automatic: bool = True):
        super().__init__(message)
        self.retry_after, self.automatic = retry_after, automatic


def lock_term(cfg) -> float:
    """Seconds the refresh lock lives: the re-read's and the save's database lock waits, the token request's
    deadline, and a margin."""
    return cfg["SAGE_HTTP_TIMEOUT"] + 2 * cfg["PANEL_DB_BUSY_SECONDS"] + MARGIN


def _lock_key(company_id: int) -> str:
    return f"sage:refresh-lock:{company_id}"


def _unknown_key(company_id: int) -> str:
    return f"sage:refresh-unknown:{company_id}"


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


def _release_connection() -> None:
    """End the session's transaction so its connection goes back to the pool (pending changes are committed)."""
    db.session.commit()


def access_token(company_id: int) -> str:
    """A valid access token for the company, refreshing it (once, under the Redis lock) when needed; raises
    SageUnavailable, or RefreshPending when another request's refresh is under way or its outcome is unknown."""
    token = store.current(company_id)
    _check(token)
    if _usable(token):
        return decrypt(token.access_token_enc)
    _release_connection()  # never hold a pooled DB connection while waiting for the lock
    connection = get_redis()
    term = lock_term(current_app.config)
    lock = connection.lock(_lock_key(company_id), timeout=term, blocking_timeout=LOCK_WAIT)
    try:
        _pending_if_unknown(connection, company_id)
        acquired = lock.acquire()
    except redis.RedisError as exc:
        raise SageUnavailable("The token could not be refreshed because Redis is unavailable.") from exc
    started = time.monotonic()
    if not acquired:
        token = store.current(company_id)  # the holder may have finished just as we gave up
        _check(token)
        if _usable(token):
            return decrypt(token.access_token_enc)
        _pending_if_unknown(connection, company_id)
        raise RefreshPending("A refresh of the Sage token is in progress (started by another request).",
                             IN_PROGRESS_RETRY)
    outcome = {"unknown": False}
    try:
        token = store.current(company_id)  # re-read: another process may have refreshed while we waited
        _check(token)
        if _usable(token):
            return decrypt(token.access_token_enc)
        return _refresh(token, term - (time.monotonic() - started) - MARGIN, outcome)
    finally:
        with contextlib.suppress(redis.RedisError):
            if outcome["unknown"]:
                # Sage ID may have rotated the refresh token: no one presents it again for a whole new term.
                connection.set(_unknown_key(company_id), "1", ex=round(term))
                lock.reacquire()
            else:
                # An expired or lost lock is fine to ignore: the compare-and-swap save still protects the token.
                lock.release()


def _pending_if_unknown(connection, company_id: int) -> None:
    """Raise RefreshPending (not automatic) while the last refresh's outcome is unknown."""
    left = connection.ttl(_unknown_key(company_id))
    if left is not None and left > 0:
        raise RefreshPending("The last refresh of the Sage token got no usable answer from Sage ID, so it is not "
                             "known whether it renewed the token. To keep two refreshes from overlapping, the next "
                             f"try can be made in {plural(left, 'second')}.", left, automatic=False)


def _refresh(token, budget: float, outcome: dict) -> str:
    try:
        return _refresh_once(token, budget, outcome)
    except SageUnavailable as exc:
        events.emit(events.REFRESH_FAILED, company_id=token.company_id, generation=token.generation,
                    needs_login=exc.needs_login, outcome="unknown" if outcome["unknown"] else "failed",
                    reason=exc.message, level=logging.WARNING)
        raise


def _unknown(what: str) -> SageUnavailable:
    term = round(lock_term(current_app.config))
    return SageUnavailable(f"{what}, so it is not known whether it renewed the token. To keep two refreshes from "
                           f"overlapping, the next try can be made in {plural(term, 'second')}; if Sage ID did "
                           "renew it, that try will fail and the token will need a new Login Now.")


def _refresh_once(token, budget: float, outcome: dict) -> str:
    try:
        refresh_token = decrypt(token.refresh_token_enc)
    except DecryptionError as exc:
        store.mark_needs_login(token, "The stored token cannot be decrypted with the configured keys.")
        raise SageUnavailable("The stored Sage token cannot be decrypted: an admin needs to click Login Now.",
                              needs_login=True) from exc
    if not refresh_token:
        store.mark_needs_login(token, "Sage ID gave no refresh token (is offline_access granted?).")
        raise SageUnavailable("The Sage token cannot be refreshed: an admin needs to click Login Now.", True)
    deadline = min(current_app.config["SAGE_HTTP_TIMEOUT"], budget)
    if deadline < 1:  # the re-read took most of the term: don't send what might outlive the lock
        raise SageUnavailable("The token could not be refreshed in time (the database was slow). Please try again.")
    now = clock.now()
    _release_connection()  # and not during the network call either
    outcome["unknown"] = True  # from here until an answer says otherwise, Sage ID may have rotated the token
    try:
        response = client.refresh(refresh_token, deadline)
    except TokenError as exc:
        if exc.code == "bad_answer" or exc.code.startswith("http_5"):
            raise _unknown(f"Sage ID's answer to the refresh could not be used ({exc.reason()})") from exc
        outcome["unknown"] = False  # an OAuth error answer: the refresh token was not exchanged
        if exc.terminal:  # retrying cannot fix it (invalid_grant, invalid_scope, …): only a new Login Now can
            reason = f"Sage ID refused the refresh ({exc.reason()})."
            store.mark_needs_login(token, reason[:500])
            raise SageUnavailable(f"The Sage token needs a new Login Now: {reason}", needs_login=True) from exc
        raise SageUnavailable(f"Sage ID could not refresh the token ({exc.reason()}). Please try again.") from exc
    except HttpFailure as exc:
        if not exc.sent:
            outcome["unknown"] = False
            raise SageUnavailable("Sage ID could not be reached to refresh the token. Please try again.") from exc
        what = {"timeout": f"Sage ID did not answer in time (within {deadline:.0f} s) to refresh the token",
                "too_large": "Sage ID answered the refresh with too much data"}.get(
            exc.kind, "The connection to Sage ID broke while it refreshed the token")
        raise _unknown(what) from exc
    if not store.save_refreshed(token, response, now):
        # A new Login Now replaced the token while we refreshed: use whatever is current now.
        outcome["unknown"] = False
        fresh = store.current(token.company_id)
        _check(fresh)
        return decrypt(fresh.access_token_enc)
    outcome["unknown"] = False
    return response["access_token"]
