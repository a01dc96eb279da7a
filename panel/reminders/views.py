"""Reminder settings and recipient views (filled in by the reminders issue)."""
from __future__ import annotations

from flask import Flask


def context_for(company, user) -> dict:
    """Template context the Sage settings page needs for the reminder sections."""
    return {}


def init_app(app: Flask) -> None:
    """Register the blueprint."""
