"""The real app plus two bench-only routes. ``gunicorn bench.wsgi_bench:app`` (run from the project folder).

- ``/_bench/bare``: returns "ok" — the same app, hooks and server, no work: the stack's limit (the baseline).
- ``/_bench/authed``: ``login_required`` + ``poll_endpoint`` returning "ok" — the widget's route minus the widget's
  own work (user load + session check only). Used to split the widget's cost into "auth" and "widget".
"""
from __future__ import annotations

from flask_login import login_required

from panel import create_app
from panel.sessions import poll_endpoint


def build_app(config: dict | None = None):
    """``create_app(config)`` with the bench routes added (panel/ is not touched)."""
    app = create_app(config)

    @app.route("/_bench/bare")
    def bench_bare():
        return "ok"

    @app.route("/_bench/authed")
    @login_required
    @poll_endpoint
    def bench_authed():
        return "ok"

    return app
