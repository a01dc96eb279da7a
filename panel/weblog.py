"""gunicorn in the panel's one log format: ``gunicorn -c python:panel.weblog wsgi:app`` (./gunicorn.conf.py
re-exports these settings, so a plain ``gunicorn wsgi:app`` in the project folder gets them too).

The access log leaves out static files, widget and test-email polls and health probes — most of the traffic, and
none of it news — unless PANEL_ACCESS_LOG_ALL=1. Query strings are redacted like every other line (the OAuth
callback's ``code`` and ``state``), and one-click unsubscribe tokens are cut from paths.
"""
from __future__ import annotations

import gc
import os
import re

from gunicorn.glogging import Logger

from . import logs

QUIET = re.compile(r"/(static/.*|favicon\.ico|healthz|readyz|settings/sage/widget|settings/notifications/test-email/[^/]+)")


def quiet(path: str) -> bool:
    """True for requests the access log leaves out by default (static files, polls, probes)."""
    return QUIET.fullmatch(path) is not None


class PanelLogger(Logger):
    """gunicorn's logger, writing through the panel's handler; one access line per request that matters."""

    def setup(self, cfg):
        """Let gunicorn set levels, then route its loggers through the panel's one handler."""
        super().setup(cfg)
        logs.configure()
        if logs.REDACTING not in self.error_log.filters:
            self.error_log.addFilter(logs.REDACTING)  # it names the URI of a failed request
        self.log_everything = os.environ.get("PANEL_ACCESS_LOG_ALL", "").strip().lower() in {"1", "true", "yes", "on"}

    def access(self, resp, req, wsgi, request_time):
        """Log one request: method, path (query redacted), status, bytes and milliseconds as fields."""
        path = wsgi.get("PATH_INFO", "")
        if not self.access_log_enabled or (quiet(path) and not self.log_everything):
            return
        query = wsgi.get("QUERY_STRING", "")
        target = logs.scrub(path + ("?" + query if query else ""))
        status = getattr(resp, "status_code", None) or str(getattr(resp, "status", "-")).split(" ")[0]
        millis = round(request_time.total_seconds() * 1000, 1)
        size = getattr(resp, "sent", None)
        self.access_log.info("%s %s %s %sms", wsgi.get("REQUEST_METHOD", "-"), target, status, millis,
                             extra={"method": wsgi.get("REQUEST_METHOD", "-"), "path": target,
                                    "status": int(status) if str(status).isdigit() else status,
                                    "bytes": size, "duration_ms": millis,
                                    "remote_addr": wsgi.get("REMOTE_ADDR", "-")})


# gunicorn settings (read by `-c python:panel.weblog` and by ./gunicorn.conf.py)
logger_class = PanelLogger
accesslog = "-"
# The app is built once in the master and the workers are forked from it, sharing its memory (copy-on-write)
# instead of each importing and building everything again.
preload_app = True


def when_ready(server) -> None:
    """After the app is loaded and before workers fork: compile its templates (once, shared, instead of once per
    worker), then move what exists out of the garbage collector's reach, so its passes do not write to (and so
    un-share) pages the workers share with the master."""
    app = server.app.wsgi() if server.cfg.preload_app else None
    env = getattr(app, "jinja_env", None)
    if env is not None:
        for name in env.list_templates(filter_func=lambda n: n.endswith((".html", ".txt"))):
            env.get_template(name)
    gc.freeze()
