"""Accounts: sign in and out, the user loader, and what happens to unauthenticated requests."""
from __future__ import annotations

from flask import Flask, redirect, request, url_for
from flask_htmx import make_response as htmx_response

from ..extensions import htmx, login_manager
from ..sessions import load
from .guards import admin_required, company_scoped, safe_next  # noqa: F401  (re-exported)
from .views import bp


@login_manager.user_loader
def load_user(user_id: str):
    """The active user of this request's live server-side session (ended or inactive: signed out at once)."""
    return load(user_id)


@login_manager.unauthorized_handler
def unauthorized():
    """htmx requests get 401 + HX-Redirect so a sign-in form is never swapped into a fragment."""
    if htmx:
        current = request.headers.get("HX-Current-URL", "")
        target = url_for("auth.login", next=safe_next(current) or None)
        return htmx_response("", 401, redirect=target)
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def init_app(app: Flask) -> None:
    """Bind flask-login and the auth blueprint."""
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    app.register_blueprint(bp)
