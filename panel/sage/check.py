"""One company's connection check: a real GET /sites through ``api.py`` (which refreshes the access token through
its single-flight path), retried while the failure is transient, and told apart: working, broken (only a person
can fix it), transient (Sage or the network, worth another try) or local (our own Redis: never Sage's fault).
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Sequence

import redis

from ..localtime import plural
from . import api, store


class Kind(str, enum.Enum):
    """How a check went."""

    OK = "ok"
    BROKEN = "broken"        # definite: Sage ID or the Sage API refused; an alert goes out
    TRANSIENT = "transient"  # timeouts, connection errors, 5xx, 429: tried again before anyone is alerted
    LOCAL = "local"          # our side (Redis for the refresh lock): tried again, never an alert


@dataclass(frozen=True)
class Outcome:
    """A check's result and the reason to show (Sage's own words where it gave some)."""

    kind: Kind
    reason: str = ""
    sites: int = 0


RETRYABLE_STATUS = {408, 425, 429}  # with every 5xx: the API is busy or down, not refusing this company


def classify(exc: api.SageUnavailable) -> Outcome:
    """What a failed call means for the connection."""
    if exc.needs_login:
        return Outcome(Kind.BROKEN, exc.message)
    if exc.status is not None:
        said = f": {exc.detail}" if exc.detail else ""
        if exc.status >= 500 or exc.status in RETRYABLE_STATUS:
            return Outcome(Kind.TRANSIENT, f"The Sage API answered with an error ({exc.status}){said}.")
        return Outcome(Kind.BROKEN, f"The Sage API refused the request ({exc.status}){said}.")
    if isinstance(exc.__cause__, redis.RedisError):  # the refresh lock could not be taken: our fault, not Sage's
        return Outcome(Kind.LOCAL, exc.message)
    return Outcome(Kind.TRANSIENT, exc.message)


def _once(company_id: int) -> Outcome:
    """One try: GET /sites; a 401 on an access token that still had time left is refreshed once and retried."""
    try:
        found = api.sites(company_id)
    except api.SageUnavailable as exc:
        token = store.current(company_id)
        if exc.status != 401 or token is None or not store.distrust_access(token):
            return classify(exc)
        try:
            found = api.sites(company_id)  # refreshes first: a revoked grant answers invalid_grant here
        except api.SageUnavailable as again:
            return classify(again)
    return Outcome(Kind.OK, f"reaches {plural(len(found), 'Sage 200 site')}", len(found))


def run(company_id: int, pauses: Sequence[float] = ()) -> Outcome:
    """Check the company's connection; a transient or local failure is tried again after each of ``pauses``."""
    outcome = _once(company_id)
    for pause in pauses:
        if outcome.kind not in (Kind.TRANSIENT, Kind.LOCAL):
            break
        time.sleep(pause)
        outcome = _once(company_id)
    return outcome
