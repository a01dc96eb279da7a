"""The one place the current time comes from, so tests can move time."""
from __future__ import annotations

from datetime import datetime, timezone

_frozen: datetime | None = None


def now() -> datetime:
    """Return the current instant as an aware UTC datetime."""
    return _frozen if _frozen is not None else datetime.now(timezone.utc)


def freeze(at: datetime | None) -> None:
    """Pin ``now()`` to ``at`` (aware); ``None`` returns to the real clock. For tests and simulations."""
    global _frozen
    if at is not None and at.tzinfo is None:
        raise ValueError("freeze() needs an aware datetime")
    _frozen = at.astimezone(timezone.utc) if at is not None else None
