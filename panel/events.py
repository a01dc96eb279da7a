"""Domain events for operators: one log line per thing that happened to a company's Sage connection, settings,
reminders or sign-in, with the company and the acting person's ids as fields (JSON keys with
PANEL_LOG_FORMAT=json). The audit list on the screen is for people; these lines are for log shippers.

Callers pass ids and plain facts only — never a token, a password or an email address.
"""
from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger("panel.events")

# The events, in one place: name -> what it means.
CONNECTED = "sage.connected"            # Login Now stored a token (renewed=true when one was replaced)
REFRESHED = "sage.refreshed"            # the access token was refreshed
REFRESH_FAILED = "sage.refresh_failed"  # a refresh failed (needs_login=true: only Login Now can help)
DISCONNECTED = "sage.disconnected"      # an admin removed the stored token
SETTING_CHANGED = "setting.changed"     # a reminder setting or a person's reminder switch changed
REMINDER_SENT = "reminder.sent"
REMINDER_FAILED = "reminder.failed"     # permanent: not retried
REMINDER_RETRY = "reminder.retry"       # transient: handed back to be tried again
REMINDER_UNCERTAIN = "reminder.uncertain"  # the server may or may not have it (the ledger's uncertain state):
                                           # a lost answer during DATA, or a sender dead after DATA
SIGN_IN_LOCKED = "signin.locked"        # failed sign-ins now make this address (or account from it) wait
CONNECTION_CHECKED = "sage.checked"     # the daily check ran (outcome=ok|broken|transient|local)
CONNECTION_BROKEN = "sage.connection_broken"        # an incident opened: alerts claimed
CONNECTION_RECOVERED = "sage.connection_recovered"  # it closed: recovery messages claimed
CHANNEL_SENT = "channel.sent"           # a message reached a notification channel (kind=reminder|broken|recovered)
CHANNEL_FAILED = "channel.failed"       # a channel refused it for good, or it may have arrived (uncertain)
SWEEP_FINISHED = "sweep.finished"       # a reminder sweep ran (seconds=how long)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "process_name"}


_listeners: dict[str, Callable[[str, dict], None]] = {}


def subscribe(name: str, listener: Callable[[str, dict], None]) -> None:
    """Call ``listener(event, fields)`` after every event from now on (one listener per ``name``; it must not raise
    and must be quick: it runs where the event happens). Metrics count events this way."""
    _listeners[name] = listener


def emit(event: str, *, company_id: int | None = None, actor_id: int | None = None, level: int = logging.INFO,
         **fields) -> None:
    """Log ``event`` with the company, the actor (None: the system) and the event's own ``fields``."""
    safe = {(f"{k}_" if k in _RESERVED else k): v for k, v in fields.items()}
    log.log(level, event, extra={"event": event, "company_id": company_id, "actor_id": actor_id, **safe})
    for listener in list(_listeners.values()):
        listener(event, fields)

