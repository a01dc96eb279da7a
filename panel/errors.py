"""Error pages (full page, or a fragment for htmx) and the CSRF failure answer."""
from __future__ import annotations

from flask import Flask, g, render_template, request
from flask_htmx import make_response as htmx_response
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from .busy import DatabaseBusy, is_busy, is_unwritable
from .extensions import db, htmx, login_manager

MESSAGES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "You don't have permission to do that. Ask a company admin."),
    404: ("Not found", "There is nothing here. It may have been removed, or the link is wrong."),
    405: ("Not allowed", "That action is not available here."),
    413: ("Too large", "What you sent is too large."),
    429: ("Too many requests", "Please wait a moment and try again."),
    500: ("Something went wrong", "An unexpected error happened. Nothing was changed; please try again."),
    503: ("Temporarily unavailable", "A service the panel needs is not reachable. Please try again shortly."),
}


def render_error(code: int, message: str | None = None):
    """Render the error as a fragment for htmx requests, or as a full page."""
    title, default = MESSAGES.get(code, MESSAGES[500])
    template = "errors/_error.html" if htmx and not htmx.boosted else "errors/error.html"
    return htmx_response(render_template(template, code=code, title=title, message=message or default), code)


def busy_message() -> str:
    """What to say when the database stayed locked: a write was rolled back, a read just failed."""
    if request.method in ("GET", "HEAD"):
        return "The database is busy right now. Please try again in a moment."
    return "The database is busy right now, so nothing was saved. Please try again in a moment."


def unwritable_message() -> str:
    """What to say when the database takes no writes (read-only, or its disk is full)."""
    return ("The database can't store changes right now (it is read-only or its disk is full), so nothing was "
            "saved. Please try again later; if this goes on, tell whoever runs the panel.")


def init_app(app: Flask) -> None:
    """Register the handlers."""

    @app.errorhandler(CSRFError)
    def _csrf(err: CSRFError):
        if htmx:
            # The page's token is stale (new session, restarted server): reload it to get a fresh one.
            return htmx_response("", 400, refresh=True)
        return render_error(400, "Your form had expired. Please go back, reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        if err.code in MESSAGES:
            return render_error(err.code)
        return err

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        app.logger.exception("unhandled error")
        db.session.rollback()
        return render_error(500)

    @app.errorhandler(DatabaseBusy)
    @app.errorhandler(DBAPIError)
    def _database(err: Exception):
        if is_unwritable(err):
            app.logger.error("database refused a write: %s %s: %s", request.method, request.path,
                             getattr(err, "orig", err))
            db.session.rollback()
            return render_error(503, unwritable_message())
        if not isinstance(err, DatabaseBusy) and not is_busy(err):
            return _unexpected(err)
        app.logger.warning("database busy: %s %s: %s", request.method, request.path, getattr(err, "orig", err))
        db.session.rollback()
        if "_login_user" not in g:
            # Loading the signed-in user was what failed: render the answer without waiting on the lock again
            # (flask-login's template context would retry the load; it keeps the user in g._login_user).
            g._login_user = login_manager.anonymous_user()
        return render_error(503, busy_message())
