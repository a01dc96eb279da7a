"""Domain events for operators: one log line per thing that happened to a company's Sage connection, settings,
reminders or sign-in, with the company and the acting person's ids as fields (JSON keys with
PANEL_LOG_FORMAT=json). The audit list on the screen is for people; these lines are for log shippers.

Callers pass ids and plain facts only — never a token, a password or an email address.
"""
from __future__ import annotations

import logging

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

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "process_name"}


def emit(event: str, *, company_id: int | None = None, actor_id: int | None = None, level: int = logging.INFO,
         **fields) -> None:
    """Log ``event`` with the company, the actor (None: the system) and the event's own ``fields``."""
    safe = {(f"{k}_" if k in _RESERVED else k): v for k, v in fields.items()}
    log.log(level, event, extra={"event": event, "company_id": company_id, "actor_id": actor_id, **safe})

