"""Demo SageID: a real OAuth 2.0 authorization server standing in for Sage ID (demo mode only)."""
from __future__ import annotations

from flask import Flask

from . import models  # noqa: F401  (its tables exist in every configuration, so migrations always see them)
from .client import CLIENT_ID, client_secret
from .server import create_server
from .views import bp


def init_app(app: Flask) -> None:
    """In demo mode (no SAGE_CLIENT_ID, never production) point the SAGE_* settings here and register the server."""
    cfg = app.config
    if not cfg.get("SAGE_DEMO") or cfg.get("PRODUCTION"):
        cfg["SAGE_DEMO_ACTIVE"] = False
        return
    base = cfg["PANEL_BASE_URL"]
    cfg.update({
        "SAGE_CLIENT_ID": CLIENT_ID,
        "SAGE_CLIENT_SECRET": client_secret(cfg["SECRET_KEY"]),
        "SAGE_AUTHORIZE_URL": base + "/demo-sageid/authorize",
        "SAGE_TOKEN_URL": base + "/demo-sageid/oauth/token",
        "SAGE_API_BASE": base + "/demo-sageid/api",
        "SAGE_DEMO_ACTIVE": True,
    })
    app.extensions["demo_sageid"] = create_server()
    app.register_blueprint(bp)

