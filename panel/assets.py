"""What the panel sends when it serves everything itself (``make run``, or gunicorn with no front server):
compressed responses, and static files under fingerprinted URLs that browsers keep for a year.

- Every ``url_for('static', filename=…)`` gets ``?v=`` and the first 12 hex digits of the file's SHA-256 (read once
  per process). A request whose ``v`` is the file's current fingerprint is answered ``Cache-Control: public,
  max-age=31536000, immutable``: a repeat view loads no static file at all. Without it (or with an old one, after a
  deploy) the file is ``no-cache``, revalidated by its ETag, as before.
- HTML, CSS, JavaScript, SVG and JSON of 500 bytes or more go out compressed (Flask-Compress) as the browser's
  Accept-Encoding allows: brotli, else gzip (static files, which Flask streams: brotli, else deflate). PANEL_COMPRESS=0
  turns it off, for a front server that compresses itself. (304 answers have no body to compress.) Static files are
  compressed on each request; with year-long lifetimes a browser asks for each once.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, Response, request
from flask_compress import Compress

YEAR = "public, max-age=31536000, immutable"
MIMETYPES = ["text/html", "text/css", "text/javascript", "application/javascript", "image/svg+xml",
             "application/json"]


def fingerprints(folder: str) -> dict[str, str]:
    """The fingerprint of every file in the static folder, by the name url_for uses."""
    root = Path(folder)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in sorted(root.rglob("*")) if p.is_file()}


def init_app(app: Flask) -> None:
    """Fingerprint static URLs, give fingerprinted files a year-long lifetime, and compress responses."""
    prints = fingerprints(app.static_folder)

    @app.url_defaults
    def _fingerprint(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "v" not in values and values.get("filename") in prints:
            values["v"] = prints[values["filename"]]

    @app.after_request
    def _lifetime(resp: Response) -> Response:
        if request.endpoint == "static" and resp.status_code in (200, 304):
            filename = (request.view_args or {}).get("filename")
            if filename in prints and request.args.get("v") == prints[filename]:
                resp.headers["Cache-Control"] = YEAR
        return resp

    if app.config["PANEL_COMPRESS"]:
        app.config.update(COMPRESS_MIMETYPES=MIMETYPES, COMPRESS_ALGORITHM=["br", "gzip"],
                          COMPRESS_ALGORITHM_STREAMING=["br", "deflate"], COMPRESS_MIN_SIZE=500)
        Compress(app)
