"""Email as it travels: built with the standard library (``EmailMessage``, policy SMTP), headers that providers read
raw written verbatim, address headers that a name cannot break, and the exact bytes handed to SMTP (made once).

flask-mail (0.10) encodes ``List-Unsubscribe`` as an RFC 2047 encoded-word, which RFC 2369/8058 readers ignore;
the standard policy does the same to any header too long for one line. So the headers that carry a URL or an id
(List-Unsubscribe, List-Unsubscribe-Post, Message-ID) are checked ASCII values written on one line.

The MIME structure is set directly (``text_part``, ``multipart``): the structural headers are short ASCII values
we write ourselves, and the parts are quoted-printable (``binascii.b2a_qp``). Going through ``set_content`` and
``add_alternative`` instead parses and re-folds every one of those headers and costs about 3× the whole message
(bench/email_throughput.py); only Subject (RFC 2047) and the addresses go through the library's header classes.
"""
from __future__ import annotations

import binascii
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import Address, HeaderRegistry, UniqueAddressHeader, UniqueUnstructuredHeader
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, parseaddr
from functools import cached_property, lru_cache
from io import BytesIO

# Anything that could end a header line or hide in one: C0/C1 controls, DEL, Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ADDRESS = re.compile(r"[^\s<>(),;:\"\[\]\\@]+@[^\s<>(),;:\"\[\]\\@]+")
_URL = re.compile(r"https?://[!#-;=?-~]{1,900}")  # printable ASCII except space, '"', '<', '>'; fits one line
_VERBATIM = re.compile(r"[!-~](?:[ -~]{0,900}[!-~])?")  # one line of printable ASCII, no edge spaces
_LINE_END = re.compile(r"\r\n|\r|\n")  # what the library's generator splits lines on (email.generator.NLCRE)


class UnsafeHeader(ValueError):
    """A value that would go into a header (an address or URL) contains characters that cannot be made safe."""


def header_text(value: str, limit: int = 200) -> str:
    """``value`` with every control character (CR, LF, NUL, ...) replaced by a space: safe in any header."""
    return " ".join(_CONTROL.sub(" ", value or "").split())[:limit]


def header_address(email: str) -> str:
    """``email`` unchanged when it is one plain address; UnsafeHeader otherwise (never silently rewritten)."""
    if not email or len(email) > 254 or not _ADDRESS.fullmatch(email):
        raise UnsafeHeader(f"not a single plain email address: {email!r}")
    return email


def header_url(url: str) -> str:
    """``url`` unchanged when it has no spaces, controls, quotes or angle brackets; UnsafeHeader otherwise."""
    if not _URL.fullmatch(url or ""):
        raise UnsafeHeader(f"unsafe URL for a header: {url!r}")
    return url


class VerbatimHeader(UniqueUnstructuredHeader):
    """A header written exactly as given on one line: never encoded-words, never folded inside the value.

    For values read raw by their readers: ``List-Unsubscribe: <https://…>`` (RFC 2369, RFC 8058) and msg-ids.
    """

    @classmethod
    def parse(cls, value, kwds):
        """Accept one line of printable ASCII only (≤ 998 octets with the name, RFC 5322 §2.1.1)."""
        if not _VERBATIM.fullmatch(value):
            raise UnsafeHeader(f"not a one-line ASCII header value: {value!r}")
        kwds["parse_tree"] = None  # never refolded (see fold), so never parsed
        kwds["decoded"] = value  # not decoded either: "=?" in a URL stays as it is

    def fold(self, *, policy):
        """``Name: value`` and the line end, untouched."""
        return f"{self.name}: {self}{policy.linesep}"


class SubjectHeader(UniqueUnstructuredHeader):
    """The library's Subject (RFC 2047 words as needed, folded at 78), folded once per header object and policy:
    the reminders of one company share one subject object (``new_message``), and refolding it was a sixth of the
    time spent serialising a message."""

    def fold(self, *, policy):
        """As the library folds it; remembered."""
        folds = self.__dict__.setdefault("_folds", {})
        if policy not in folds:
            folds[policy] = super().fold(policy=policy)
        return folds[policy]


class MailboxHeader(UniqueAddressHeader):
    """From/To with one mailbox, written so that every receiver finds exactly that one address.

    Python 3.11's folder drops the quotes of a display name it has to split (CPython gh-80222), turning
    ``"Padding …, attacker@evil.test" <victim@…>`` into two addresses. An ASCII mailbox (the standard library
    quotes the name whenever it needs to) is therefore written on one line, ≤ 998 octets (RFC 5322 §2.1.1); a
    non-ASCII name is folded by the library as RFC 2047 encoded-words, which keep specials inside them.
    """

    @classmethod
    def parse(cls, value, kwds):
        """As the library does; but an ASCII address object is not re-parsed from text, as it is never refolded."""
        if isinstance(value, Address) and str(value).isascii():
            kwds["parse_tree"] = None
        super().parse(value, kwds)

    def fold(self, *, policy):
        """One line for an ASCII mailbox; the library's encoded-word folding otherwise."""
        text = str(self)
        if text.isascii():
            return f"{self.name}: {text}{policy.linesep}"
        return super().fold(policy=policy)


class _Registry(HeaderRegistry):
    """The library's registry, but each header class made once: HeaderRegistry builds a new class on every lookup,
    about 50 µs a header."""

    def __init__(self):
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name):
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(key)
        return made


def _registry() -> HeaderRegistry:
    registry = _Registry()  # our own: the module-level default registry is shared by every EmailPolicy
    for name in ("list-unsubscribe", "list-unsubscribe-post", "message-id", "auto-submitted", "x-panel-company",
                 "date", "mime-version", "content-type", "content-transfer-encoding", "content-disposition"):
        registry.map_to_type(name, VerbatimHeader)
    for name in ("from", "to"):
        registry.map_to_type(name, MailboxHeader)
    registry.map_to_type("subject", SubjectHeader)
    return registry


# CRLF line ends, folding at 78; 7bit so that no relay needs 8BITMIME (non-ASCII text goes quoted-printable).
POLICY = policy.SMTP.clone(cte_type="7bit", header_factory=_registry())


def mailbox(name: str, email: str) -> Address:
    """``name <email>`` as an address object: the name cleaned of controls, the address checked (UnsafeHeader)."""
    # "=?" opens an RFC 2047 encoded-word: parsers decode one even inside a quoted name (a defect), so a name could
    # pose as other text; a space keeps it literal.
    return Address(display_name=header_text(name).replace("=?", "= ?"), addr_spec=header_address(email))


@lru_cache(maxsize=32)
def sender_address(configured: str) -> Address:
    """MAIL_DEFAULT_SENDER ("Name <addr>" or "addr") as an address object; UnsafeHeader when it is not one."""
    name, addr = parseaddr(configured)
    return mailbox(name, addr)


@dataclass
class Outgoing:
    """One message to one recipient: the ``EmailMessage``, its SMTP envelope, and its bytes (serialised once)."""

    message: EmailMessage
    sender: str     # envelope MAIL FROM
    recipient: str  # envelope RCPT TO: the one recipient

    @cached_property
    def raw(self) -> bytes:
        """The message exactly as sent: CRLF line ends, 7-bit, folded by POLICY (the bytes ``as_bytes`` gives)."""
        out = BytesIO()
        _Generator(out, mangle_from_=False, policy=POLICY).flatten(self.message)
        return out.getvalue()


class _Generator(BytesGenerator):
    """The library's generator, writing a text part's lines in one piece instead of line by line (that was most of
    the serialising time): the same bytes, as ``Outgoing.raw``'s test checks."""

    def _write_lines(self, lines):
        if "\r" not in lines:
            self.write(lines.replace("\n", self._NL))
        elif lines:
            self.write(_LINE_END.sub(self._NL, lines))


def text_part(content: str, subtype: str = "plain", filename: str | None = None) -> MIMEPart:
    """A text/``subtype`` part in UTF-8, quoted-printable (7-bit, readable); an attachment when ``filename``."""
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    if filename:
        part["Content-Disposition"] = f'attachment; filename="{filename}"'
    part.set_payload(binascii.b2a_qp(content.encode("utf-8"), istext=True).decode("ascii"))
    return part


def _boundary() -> str:
    # "=_" can never occur in a quoted-printable body ("=" is always written "=3D" there), so no part can close early.
    return f"=_{secrets.token_hex(16)}"


def multipart(subtype: str, parts: list[MIMEPart], into: MIMEPart | None = None) -> MIMEPart:
    """``parts`` as a multipart/``subtype`` (in ``into``, e.g. the message itself, or a new part)."""
    whole = into if into is not None else MIMEPart(policy=POLICY)
    whole["Content-Type"] = f'multipart/{subtype}; boundary="{_boundary()}"'
    whole.set_payload(parts)
    return whole


@lru_cache(maxsize=256)
def _subject(text: str):
    # The header object, parsed once per text: a batch's reminders of one company share their subject. Header
    # objects are immutable, and EmailMessage stores one given for the same name as it is.
    return POLICY.header_factory("Subject", text)


def new_message(*, sender: Address, to: Address, subject: str, date: datetime, message_id: str,
                headers: dict[str, str]) -> EmailMessage:
    """An ``EmailMessage`` with these headers (``headers`` values are written verbatim, so checked); no body yet."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = _subject(header_text(subject))
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name] = value
    msg["MIME-Version"] = "1.0"
    return msg
