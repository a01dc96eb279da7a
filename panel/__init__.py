"""Sage settings panel. ``from panel import create_app`` builds the app (panel/factory.py).

The package itself imports nothing: processes that need only a part of it — ``rq cron`` and the ``make run``
supervisor (``python -m panel.supervise``) — import that part without Flask, SQLAlchemy and the rest of the app
(bench/RESULTS.md, benchmark 5). ``create_app`` and ``ConfigError`` are loaded on first use (PEP 562).
"""
from __future__ import annotations

import importlib

_LAZY = {"create_app": "panel.factory", "ConfigError": "panel.config"}


def __getattr__(name: str):
    """``panel.create_app`` / ``panel.ConfigError``, imported from their modules when first asked for."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # asked once: later lookups find it here
        return value
    raise AttributeError(f"module 'panel' has no attribute {name!r}")


__all__ = ["create_app", "ConfigError"]
