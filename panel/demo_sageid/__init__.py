"""Demo SageID: a real OAuth 2.0 authorization server standing in for Sage ID (demo mode only)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """In demo mode (no SAGE_CLIENT_ID, never production) point the SAGE_* settings here and register the server."""
