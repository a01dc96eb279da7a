"""Security headers on every response (CSP without unsafe-inline/unsafe-eval, nosniff, referrer, HSTS), and the
request body cap."""
from __future__ import annotations

from flask import Flask, Response, abort, g, request

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])


PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=()"
HSTS = "max-age=31536000; includeSubDomains"


def fixed_headers(app: Flask) -> list[tuple[str, str]]:
    """The security headers every response carries (panel.fastpoll's 304s too); Referrer-Policy's default."""
    found = app.extensions.get("panel_fixed_headers")
    if found is None:
        found = [("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                 ("Referrer-Policy", "same-origin"), ("Permissions-Policy", PERMISSIONS),
                 ("Cross-Origin-Resource-Policy", "same-origin")]
        if app.config.get("PRODUCTION"):
            found.append(("Strict-Transport-Security", HSTS))
        app.extensions["panel_fixed_headers"] = found
    return found


def no_referrer() -> None:
    """Send ``Referrer-Policy: no-referrer`` on this response (OAuth callback pages)."""
    g.referrer_policy = "no-referrer"


def init_app(app: Flask) -> None:
    """Register the body-size check and the header hook."""

    @app.before_request
    def _body_cap():
        # Flask refuses oversized bodies only when a view reads them; this answers 413 for every route, from the
        # declared Content-Length, before anything is read. (A chunked body is cut off while reading.)
        if (request.content_length or 0) > app.config["MAX_CONTENT_LENGTH"]:
            abort(413)

    @app.after_request
    def _headers(resp: Response) -> Response:
        h = resp.headers
        for name, value in fixed_headers(app):
            if name == "Referrer-Policy":
                h[name] = g.get("referrer_policy", value)
            else:
                h.setdefault(name, value)
        if resp.mimetype == "text/html":
            # Pages carry per-user data: never cached by shared caches or kept in the back/forward cache.
            h.setdefault("Cache-Control", "no-store")
        return resp
