"""htmx partial responses shared by the Sage and reminder views."""
from __future__ import annotations

from flask import render_template
from flask_htmx import make_response as htmx_response

CHANGED = "sage-token-changed"  # HX-Trigger event: the token widget and the audit list refresh at once


def fragment(template: str, code: int = 200, trigger: str | None = None, **ctx):
    """Render a partial as an htmx response (HTTP ``code``, optional HX-Trigger) cached apart from the full page.

    ``code`` is not called ``status``: the widget context has a ``status`` of its own.
    """
    resp = htmx_response(render_template(template, **ctx), code, trigger=trigger)
    resp.headers["Vary"] = "HX-Request"
    return resp
