"""Send a batch of messages over ONE SMTP connection (timeout, verified TLS), one outcome per recipient.

flask-mail opens the connection (``VerifiedConnection``); each ``Outgoing`` goes as its own bytes, built once by
``message.py``, with ``sendmail``. Without MAIL_SERVER (never in production) messages go to the demo outbox
instead: the same bytes as .eml files in the instance folder.
"""
from __future__ import annotations

import enum
import os
import smtplib
import ssl
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import flask_mail
from flask import current_app

from .. import clock
from .message import Outgoing


class Outcome(str, enum.Enum):
    """What happened to one message: sent, worth retrying later, or refused for good."""

    SENT = "sent"
    TRANSIENT = "transient"  # connection errors, timeouts, 4xx: retry with backoff
    PERMANENT = "permanent"  # 5xx: do not retry


@dataclass(frozen=True)
class Delivery:
    """The outcome of one message to one recipient."""

    recipient: str
    outcome: Outcome
    reason: str = ""
    code: int | None = None

    @property
    def sent(self) -> bool:
        """True when the message was handed over (or written to the demo outbox)."""
        return self.outcome is Outcome.SENT


class NotSent(Exception):
    """Raised by a ``before_data`` hook: stop before DATA; the message is not sent, the connection stays usable."""


class _BeforeData:
    """smtplib.SMTP whose ``before_data`` hook runs between RCPT and DATA: the last moment the message provably
    has not reached the server (the sweep records it in the ledger there)."""

    before_data = None

    def data(self, msg):
        if self.before_data is not None:
            self.before_data()
        return super().data(msg)


class _SMTP(_BeforeData, smtplib.SMTP):
    pass


class _SMTP_SSL(_BeforeData, smtplib.SMTP_SSL):  # noqa: N801 - mirrors smtplib's name
    pass


def tls_context(config) -> ssl.SSLContext:
    """The context that verifies the mail server's certificate chain and host name; MAIL_CA_FILE replaces the
    system CAs (a private CA)."""
    return _context(config.get("MAIL_CA_FILE"))


@lru_cache(maxsize=8)
def _context(cafile: str | None) -> ssl.SSLContext:
    # Made once per process: loading the CA store took ~40 ms, more than a whole batch's SMTP on a local server.
    return ssl.create_default_context(cafile=cafile)


class VerifiedConnection(flask_mail.Connection):
    """flask-mail's Connection, but with a socket timeout and certificate checks for STARTTLS and SSL."""

    def configure_host(self):
        """Connect, secure and log in; every socket operation is bounded by MAIL_TIMEOUT."""
        m, timeout = self.mail, current_app.config.get("MAIL_TIMEOUT", 30)
        if m.use_ssl:
            host = _SMTP_SSL(m.server, m.port, timeout=timeout, context=tls_context(current_app.config))
        else:
            host = _SMTP(m.server, m.port, timeout=timeout)
        host.set_debuglevel(int(m.debug))
        if m.use_tls:
            host.starttls(context=tls_context(current_app.config))
        if m.username and m.password:
            host.login(m.username, m.password)
        return host

    def __exit__(self, exc_type, exc_value, tb) -> None:
        if self.host is not None:
            try:
                self.host.quit()
            except (smtplib.SMTPException, OSError):
                self.host.close()  # the server already went away: nothing left to say to it


def uses_outbox(config) -> bool:
    """True when mail goes to the demo outbox: no MAIL_SERVER, never in production."""
    return not config.get("MAIL_SERVER") and not config.get("PRODUCTION")


def outbox_folder(instance_path: str) -> Path:
    """<instance>/outbox, created (0700) on first use."""
    path = Path(instance_path) / "outbox"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def write_outbox(message: Outgoing) -> str:
    """Write ``message`` to the demo outbox as an .eml file (atomically) and return its file name."""
    folder = outbox_folder(current_app.instance_path)
    name = f"{clock.now():%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}.eml"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(message.raw)
    os.replace(tmp, folder / name)
    return name


def _by_code(to: str, code: int, text) -> Delivery:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    kind = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TRANSIENT
    return Delivery(to, kind, f"{code} {text}".strip()[:500], code)


def _one(conn: VerifiedConnection, message: Outgoing, before_data=None) -> tuple[Delivery, bool]:
    """Send one message; returns its outcome and whether the connection is still usable."""
    to = message.recipient
    if conn.host is None:  # MAIL_SUPPRESS_SEND: flask-mail connected nowhere
        return Delivery(to, Outcome.SENT, "not sent: MAIL_SUPPRESS_SEND is on"), True
    conn.host.before_data = before_data
    try:
        conn.host.sendmail(message.sender, [to], message.raw)
        return Delivery(to, Outcome.SENT), True
    except NotSent as exc:
        try:
            conn.host.rset()  # undo MAIL FROM / RCPT TO; the connection serves the next message
        except (smtplib.SMTPException, OSError):
            return Delivery(to, Outcome.TRANSIENT, f"not sent: {exc}"[:500]), False
        return Delivery(to, Outcome.TRANSIENT, f"not sent: {exc}"[:500]), True
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()), (451, b"recipient refused"))
        return _by_code(to, code, text), code != 421  # smtplib closes the connection after a 421
    except smtplib.SMTPServerDisconnected as exc:
        return Delivery(to, Outcome.TRANSIENT, f"connection lost: {exc}"[:500]), False
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
        return _by_code(to, exc.smtp_code, exc.smtp_error), exc.smtp_code != 421
    except (smtplib.SMTPException, OSError) as exc:  # includes timeouts
        return Delivery(to, Outcome.TRANSIENT, f"{type(exc).__name__}: {exc}"[:500]), False


class _Sender:
    """Sends messages one at a time over one SMTP connection, opened on the first message that needs it."""

    def __init__(self):
        self.outbox = uses_outbox(current_app.config)
        self.conn: VerifiedConnection | None = None
        self.broken: Delivery | None = None  # why every later message is not attempted

    def _open(self) -> None:
        conn = VerifiedConnection(current_app.extensions["mail"])
        try:
            conn.__enter__()
        except smtplib.SMTPAuthenticationError as exc:
            reason = f"SMTP sign-in failed ({exc.smtp_code}): check MAIL_USERNAME and MAIL_PASSWORD"
            self.broken = Delivery("", Outcome.TRANSIENT, reason, exc.smtp_code)
        except (smtplib.SMTPException, OSError) as exc:  # could not connect, greeting refused, TLS failed
            reason = f"could not connect to the mail server: {type(exc).__name__}: {exc}"
            self.broken = Delivery("", Outcome.TRANSIENT, reason[:500])
        else:
            self.conn = conn

    def __call__(self, message: Outgoing, before_data=None) -> Delivery:
        """Send ``message`` (one recipient) and say what happened; never raises for SMTP or network trouble.

        ``before_data()`` runs just before the message itself goes (SMTP DATA, or writing the demo outbox); it may
        raise NotSent to send nothing.
        """
        to = message.recipient
        if self.outbox:
            try:
                if before_data is not None:
                    before_data()
            except NotSent as exc:
                return Delivery(to, Outcome.TRANSIENT, f"not sent: {exc}"[:500])
            return Delivery(to, Outcome.SENT, f"written to the demo outbox as {write_outbox(message)}")
        if self.conn is None and self.broken is None:
            self._open()
        if self.broken is not None:
            return Delivery(to, self.broken.outcome, self.broken.reason, self.broken.code)
        result, usable = _one(self.conn, message, before_data)
        if not usable:
            self.close()
            self.broken = Delivery("", Outcome.TRANSIENT, "not attempted: the SMTP connection was lost")
        return result

    def close(self) -> None:
        """Say goodbye to the server (QUIT), if connected."""
        if self.conn is not None:
            self.conn.__exit__(None, None, None)
            self.conn = None


@contextmanager
def open_sender():
    """``with open_sender() as send: send(message) -> Delivery`` — one SMTP connection for everything sent."""
    sender = _Sender()
    try:
        yield sender
    finally:
        sender.close()


def send_batch(messages: list[Outgoing]) -> list[Delivery]:
    """Send ``messages`` (one recipient each) over one connection; never raises for one bad recipient."""
    with open_sender() as send:
        return [send(message) for message in messages]
