"""Authorization helpers: admin-only views, company scoping, and same-site redirect targets."""
from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import abort, request
from flask_login import current_user, login_required
from sqlalchemy import select


def admin_required(view):
    """Require a signed-in company admin; others get 403."""

    @functools.wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def company_scoped(model, **filters):
    """A ``select(model)`` limited to the signed-in user's company (every scoped model has ``company_id``)."""
    return select(model).filter_by(company_id=current_user.company_id, **filters)


def safe_next(target: str | None) -> str | None:
    """Return ``target`` as a same-site path, or None when it could leave the site."""
    if not target or len(target) > 2000:
        return None
    if any(ord(c) < 32 or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        # Absolute URLs are accepted only when they point at this very host (htmx sends HX-Current-URL).
        if parts.netloc != request.host or parts.scheme not in {"http", "https"}:
            return None
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//"):
        return None
    return target
