"""The Sage settings screen: token status, Login Now, and the Sage ID connection."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the Sage blueprint."""
    from .views import bp

    app.register_blueprint(bp)
