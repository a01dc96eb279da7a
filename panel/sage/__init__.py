"""The Sage settings screen: token status, Login Now, and the Sage ID connection."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the Sage blueprint and the ``local`` date filter."""
    from ..audit import label
    from .status import format_local
    from .views import bp

    app.register_blueprint(bp)
    app.add_template_global(label, "audit_label")

    @app.template_filter("local")
    def _local(at, tz_name: str) -> str:
        return format_local(at, tz_name) if at is not None else ""
