"""One log format for every process (web, worker, cron, serve, cli): a text line for people, or JSON lines
(``PANEL_LOG_FORMAT=json``, python-json-logger) for log shippers. Every line names its process, and no line
carries a secret: sensitive fields and ``key=value`` pairs are redacted as the line is written.

Read from the environment, not the app config: the gunicorn master and ``rq cron`` log before (or without) an app.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Mapping

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# Loggers that bring their own handlers and formats; configure() makes them write through ours instead.
TAKEN_OVER = ("gunicorn.error", "gunicorn.access", "rq.worker", "rq.cron", "rq.scheduler", "rq.job", "alembic")
SENSITIVE = re.compile(r"(token|secret|password|passwd|authorization|cookie|csrf|^code$|^state$|verifier|api_key)",
                       re.I)
REDACTED = "[redacted]"
# Credentials inside free text (exception messages, URLs, request lines): "access_token": "…" or password=…
# anywhere, and code=/state=/token= in query strings; Bearer/Basic headers; one-click unsubscribe links.
_PAIR = re.compile(r"""(?P<key>\b(?:access_token|refresh_token|id_token|client_secret|code_verifier|password)\b)
                       (?P<sep>["']?\s*[=:]\s*["']?)(?P<value>[^&\s"',;}]+)""", re.I | re.X)
# code=/state=/token=/secret= as query parameters — also percent-encoded inside another one, as in the sign-in page's
# next=%2Fsettings%2Fsage%2Fcallback%3Fcode%3D… — up to the next parameter.
_QUERY = re.compile(r"(?P<key>(?:^|[?&;]|%3[Ff]|%26)(?:code|state|token|secret))(?P<sep>=|%3[Dd])(?P<value>(?:(?!%26)[^&;#\s\"'])+)",
                    re.I)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)
_UNSUBSCRIBE = re.compile(r"(/unsubscribe/)[^\s/?\"']+")
_RESERVED = set(RESERVED_ATTRS) | {"process_name", "message", "asctime"}


def scrub(text: str) -> str:
    """``text`` with credentials replaced by [redacted]: key=value pairs, Bearer headers, unsubscribe links."""
    for pattern in (_PAIR, _QUERY):
        text = pattern.sub(lambda m: m.group("key") + m.group("sep") + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, text)
    return _UNSUBSCRIBE.sub(r"\1" + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Scrubs a record's message itself (not only the formatted line), so no handler ever sees the secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


REDACTING = RedactingFilter()


def init_app(app) -> None:
    """Filter the development server's request log (werkzeug) and the app's own log at the source."""
    for logger in (logging.getLogger("werkzeug"), app.logger):
        if REDACTING not in logger.filters:
            logger.addFilter(REDACTING)


def process_name(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> str:
    """The process's role: PANEL_PROCESS when set, else guessed from the command (web, worker, cron, serve, cli)."""
    env = os.environ if env is None else env
    named = env.get("PANEL_PROCESS", "").strip()
    if named:
        return named
    argv = sys.argv if argv is None else argv
    program = os.path.basename(argv[0]) if argv else ""
    args = [a for a in argv[1:] if not a.startswith("-")]
    if "gunicorn" in (argv[0] if argv else ""):
        return "web"
    if program == "rq" and args and args[0] in ("worker", "cron", "worker-pool"):
        return "cron" if args[0] == "cron" else "worker"
    if program == "flask":
        return "serve" if "serve" in args else "cli"
    return program.removesuffix(".py") or "python"


def extras(record: logging.LogRecord) -> dict:
    """The structured fields a line carries beyond the standard ones (``extra=`` of the logging call)."""
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


class _Context(logging.Filter):
    """Adds the process name, and redacts fields whose names say they hold a secret."""

    def __init__(self, process: str):
        super().__init__()
        self.process = process

    def filter(self, record: logging.LogRecord) -> bool:
        record.process_name = self.process
        for key in extras(record):
            if SENSITIVE.search(key):
                setattr(record, key, REDACTED)
        return True


def _utc(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-11-26T06:06:00.123Z web[1234] INFO panel.events: sage.connected company_id=1 actor_id=2``."""

    def format(self, record: logging.LogRecord) -> str:
        line = (f"{_utc(record)} {getattr(record, 'process_name', '-')}[{record.process}] {record.levelname} "
                f"{record.name}: {record.getMessage()}")
        fields = extras(record)
        if fields.get("event") == record.getMessage():
            del fields["event"]  # the message already names it
        if fields:
            line += " " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return scrub(line)


def _text(value) -> str:
    text = str(value)
    return f'"{text}"' if not text or any(c.isspace() or c in '"=' for c in text) else text


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time, level, process, pid, logger, message, then the event's own fields."""

    def __init__(self):
        super().__init__(reserved_attrs=list(_RESERVED - {"process_name"}))

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        """Fill the standard keys first, in a fixed order, then the record's extras."""
        log_record.update({"time": _utc(record), "level": record.levelname,
                           "process": getattr(record, "process_name", "-"), "pid": record.process,
                           "logger": record.name, "message": record.getMessage()})
        super().add_fields(log_record, record, message_dict)
        log_record.pop("process_name", None)

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it), never a stale stream."""

    _panel = True

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def configure(process: str | None = None, env: Mapping[str, str] | None = None) -> logging.Handler:
    """Send every log line of this process through one handler in the chosen format; safe to call again."""
    env = os.environ if env is None else env
    process = process or process_name(env=env)
    as_json = env.get("PANEL_LOG_FORMAT", "").strip().lower() == "json"
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_panel", False)]:
        root.removeHandler(old)
    handler = _CurrentStderr()
    handler.setFormatter(JsonLineFormatter() if as_json else TextFormatter())
    handler.addFilter(_Context(process))
    root.addHandler(handler)
    if root.level == logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for name in TAKEN_OVER:
        logger = logging.getLogger(name)
        for theirs in list(logger.handlers):
            logger.removeHandler(theirs)
        logger.propagate = True
    return handler
