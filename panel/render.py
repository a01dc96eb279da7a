"""Rendering shared by pages, htmx fragments and emails: the fragment response, ``Vary: HX-Request``, Jinja filters."""
from __future__ import annotations

import re

from flask import Flask, Response, render_template
from flask_htmx import make_response as htmx_response
from markupsafe import Markup

from .audit import label
from .localtime import format_local, format_local_time, plural

CHANGED = "sage-token-changed"  # HX-Trigger event: the token widget and the audit list refresh at once


def fragment(template: str, code: int = 200, trigger: str | None = None, **ctx):
    """Render a partial as an htmx response (HTTP ``code``, optional HX-Trigger).

    ``code`` is not called ``status``: the widget context has a ``status`` of its own.
    """
    return htmx_response(render_template(template, **ctx), code, trigger=trigger)


def email_breaks(address: str) -> Markup:
    """An email address with line-break opportunities (<wbr>) before "@" and each ".", so a narrow screen wraps
    it between its parts instead of mid-word."""
    return Markup("<wbr>").join(re.split(r"(?=[@.])", address or ""))


def _local(at, tz_name: str) -> str:
    return format_local(at, tz_name) if at is not None else ""


def init_app(app: Flask) -> None:
    """Register the filters (``local``, ``local_time``, ``plural``, ``email_breaks``), the ``audit_label`` global and
    the Vary hook."""
    app.add_template_filter(_local, "local")
    app.add_template_filter(format_local_time, "local_time")
    app.add_template_filter(plural, "plural")
    app.add_template_filter(email_breaks, "email_breaks")
    app.add_template_global(label, "audit_label")

    @app.after_request
    def _vary(resp: Response) -> Response:
        # Pages and fragments share URLs (htmx and not htmx.boosted): caches must keep them apart.
        if resp.mimetype == "text/html":
            resp.vary.add("HX-Request")
        return resp
