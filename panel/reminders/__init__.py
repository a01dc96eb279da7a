"""Token renewal reminders: settings, recipients, the daily sweep and the emails."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the reminder views (settings, recipients, My notifications)."""
    from . import views

    views.init_app(app)
