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
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h["Referrer-Policy"] = g.get("referrer_policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        if app.config.get("PRODUCTION"):
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if resp.mimetype == "text/html":
            # Pages carry per-user data: never cached by shared caches or kept in the back/forward cache.
            h.setdefault("Cache-Control", "no-store")
        return resp
