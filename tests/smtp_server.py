"""A real SMTP server for tests (aiosmtpd): records what arrived byte for byte, and can be told to fail or stall.

One recorder for every mail test: ``Recorder`` is the aiosmtpd handler, ``SMTPServer`` runs it on 127.0.0.1 (with
STARTTLS when given a TLS context). ``received`` keeps the raw bytes as they travelled, with the envelope and the
client's address; ``messages`` is the same mail parsed as a mailbox provider would (``policy.default``).
"""
from __future__ import annotations

import asyncio
import email
import logging
import threading
from dataclasses import dataclass
from email import policy

from aiosmtpd.controller import Controller
from support import free_port

# aiosmtpd logs every SMTP command at INFO; the panel's handler shows INFO, and the test server's chatter (often
# from its own thread after a test has ended) is not what a test run should print.
logging.getLogger("mail.log").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Received:
    """One accepted message: the SMTP envelope, the client's (host, port) and the DATA bytes exactly as sent."""

    peer: tuple
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    def parsed(self, parse_policy=policy.default) -> email.message.EmailMessage:
        """The message as a mailbox provider's parser reads it."""
        return email.message_from_bytes(self.raw, policy=parse_policy)


class Recorder:
    """aiosmtpd handler: keeps every accepted message; scripted 4xx/5xx replies and stalls per recipient."""

    def __init__(self):
        self.received: list[Received] = []
        self.messages: list[email.message.EmailMessage] = []  # ``received``, parsed with policy.default
        self.connections = 0
        self.port: int | None = None          # set by SMTPServer
        self.refuse: dict[str, str] = {}      # recipient -> reply for every RCPT (e.g. "550 …")
        self.fail_next: list[str] = []        # replies for the next MAIL FROM commands (e.g. ["421 …"])
        self.stall_rcpt: dict[str, float] = {}  # recipient -> seconds to stall at RCPT (once)
        self.stalled = threading.Event()
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        with self.lock:
            if self.fail_next:
                return self.fail_next.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        delay = self.stall_rcpt.pop(address, None)
        if delay:
            self.stalled.set()
            await asyncio.sleep(delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        got = Received(session.peer, envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        with self.lock:
            self.received.append(got)
            self.messages.append(got.parsed())
        return "250 Message accepted"

    def to(self) -> list[str]:
        """Recipient address of each accepted message, in order."""
        return [m["To"].addresses[0].addr_spec for m in self.messages]


class SMTPServer:
    """Controller wrapper: ``with SMTPServer() as smtp: smtp.port, smtp.handler``; STARTTLS with ``tls_context``;
    ``handler``: a Recorder of the test's own (one that stalls or fails on cue)."""

    def __init__(self, tls_context=None, handler: Recorder | None = None):
        self.handler = handler or Recorder()
        self.port = self.handler.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, tls_context=tls_context)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    def config(self) -> dict:
        """App configuration that sends mail here (plain SMTP, no sign-in, short timeout)."""
        return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": self.port, "MAIL_USE_TLS": False, "MAIL_USE_SSL": False,
                "MAIL_USERNAME": None, "MAIL_PASSWORD": None, "MAIL_TIMEOUT": 5}
