"""What ``panel.config`` shares with processes that build no app: ConfigError and the sweep interval, which ``rq
cron`` reads (panel/reminders/crontab.py) without importing the configuration's dependencies (cryptography)."""
from __future__ import annotations

from typing import Mapping


class ConfigError(RuntimeError):
    """Raised when the configuration is unsafe or incomplete; the message names every problem."""


def sweep_interval_minutes(env: Mapping[str, str]) -> int | float:
    """PANEL_SWEEP_INTERVAL_MINUTES: minutes between reminder sweeps (default 15); a fraction such as 0.5 is allowed
    (tests run sweeps seconds apart). Read here for the web and by ``rq cron``, which builds no app."""
    raw = env.get("PANEL_SWEEP_INTERVAL_MINUTES", "").strip()
    try:
        value = float(raw) if raw else 15
    except ValueError:
        value = 0
    if not 0.1 <= value <= 1440:  # also refuses nan and inf
        raise ConfigError(f"PANEL_SWEEP_INTERVAL_MINUTES must be a number of minutes from 0.1 to 1440, got {raw!r}")
    return int(value) if value == int(value) else value
