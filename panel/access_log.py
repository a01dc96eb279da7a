"""Request logs without secrets: the Sage ID callback's ``code`` and ``state`` and one-click unsubscribe tokens
(``/unsubscribe/<token>``) are replaced by ``[redacted]`` in every request log the panel's processes write.

- gunicorn: ``--logger-class panel.access_log.RedactingLogger`` (Procfile, README, ``flask serve``) redacts every
  field of the access log line (request line, path, query, referrer, headers) and gunicorn's error log.
- werkzeug's development server and the app's own logger: a logging filter, installed by ``init_app``.
"""
from __future__ import annotations

import logging
import re

from flask import Flask
from gunicorn.glogging import Logger

REDACTED = "[redacted]"
# code=… / state=… as query parameters — also when percent-encoded inside another one, as in the sign-in page's
# next=%2Fsettings%2Fsage%2Fcallback%3Fcode%3D… — up to the next parameter.
_QUERY = re.compile(r"((?:^|[?&;]|%3[Ff]|%26)(?:code|state)(?:=|%3[Dd]))(?:(?!%26)[^&;#\s\"'])*")
_UNSUBSCRIBE = re.compile(r"(/unsubscribe/)[^/?#\s\"']+")


def redact(text: str) -> str:
    """``text`` with OAuth codes/states and unsubscribe tokens replaced by ``[redacted]``."""
    if "code" not in text and "state" not in text and "unsubscribe" not in text:
        return text  # the common case, cheaply
    return _UNSUBSCRIBE.sub(r"\g<1>" + REDACTED, _QUERY.sub(r"\g<1>" + REDACTED, text))


class RedactingFilter(logging.Filter):
    """Rewrites a log record's final message when it carries a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


FILTER = RedactingFilter()


class RedactingLogger(Logger):
    """gunicorn's logger, with secrets redacted from the access log's fields and from the error log."""

    def setup(self, cfg):
        """Configure as gunicorn does, then filter the error log too (it names the URI of a failed request)."""
        super().setup(cfg)
        if FILTER not in self.error_log.filters:
            self.error_log.addFilter(FILTER)

    def atoms(self, resp, req, environ, request_time):
        """The access log's fields, each string redacted."""
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}


def init_app(app: Flask) -> None:
    """Filter the development server's request log (werkzeug) and the app's own log."""
    for logger in (logging.getLogger("werkzeug"), app.logger):
        if FILTER not in logger.filters:
            logger.addFilter(FILTER)
