"""Checks on an email exactly as it travelled: the raw header lines, as mailbox providers read them (RFC 5322,
RFC 2047, RFC 2369, RFC 8058), and a parse with ``policy.strict`` that must find no defect anywhere."""
from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses

ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def head_and_body(raw: bytes) -> tuple[bytes, bytes]:
    """The header block (without the blank line) and the body."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, "no blank line between header and body"
    return head, body


def physical_lines(raw: bytes) -> list[bytes]:
    """The header block's physical lines, CRLF removed."""
    return head_and_body(raw)[0].split(b"\r\n")


def header_fields(raw: bytes) -> list[tuple[str, list[bytes]]]:
    """(name, [physical lines]) for each header field, in order, as folded on the wire."""
    fields: list[tuple[str, list[bytes]]] = []
    for line in physical_lines(raw):
        if line[:1] in (b" ", b"\t"):
            assert fields, "a continuation line before the first header"
            fields[-1][1].append(line)
        else:
            name = line.split(b":", 1)[0]
            assert re.fullmatch(rb"[!-9;-~]+", name), f"not a header field name: {line!r}"
            fields.append((name.decode("ascii"), [line]))
    return fields


def field(raw: bytes, name: str) -> list[bytes]:
    """The physical lines of the one header field called ``name`` (case-insensitive); fails unless exactly one."""
    found = [lines for n, lines in header_fields(raw) if n.lower() == name.lower()]
    assert len(found) == 1, f"{name}: {len(found)} fields"
    return found[0]


def unfolded(raw: bytes, name: str) -> str:
    """The value of header ``name`` with folding removed (RFC 5322 §2.2.3), not decoded."""
    lines = field(raw, name)
    text = b"".join(lines).decode("ascii")
    return text.split(":", 1)[1].strip()


def assert_wire_ok(raw: bytes) -> None:
    """Every line ends in CRLF (no bare CR or LF), is 7-bit and ≤ 998 octets; header lines ≤ 78 unless unfoldable."""
    assert raw.isascii(), "8-bit data on the wire without 8BITMIME/SMTPUTF8"
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b""), "a bare CR or LF"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n")), "a line longer than 998 octets (RFC 5322 §2.1.1)"
    for name, lines in header_fields(raw):
        for line in lines:
            for word in ENCODED_WORD.findall(line):
                assert len(word) <= 75, f"{name}: an encoded-word longer than 75 characters (RFC 2047 §2)"


def assert_folded_within_78(raw: bytes, name: str) -> None:
    """Header ``name`` is folded so that no line exceeds 78 characters and continuations start with whitespace."""
    lines = field(raw, name)
    assert all(len(line) <= 78 for line in lines), lines
    assert all(line[:1] in (b" ", b"\t") for line in lines[1:]), lines


def strict(raw: bytes) -> EmailMessage:
    """``raw`` parsed with ``policy.strict`` (raises on any defect); asserts that no part or header has one."""
    msg = email.message_from_bytes(raw, policy=policy.strict)
    for part in msg.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
        for name, value in part.items():
            assert not value.defects, (name, value.defects)
        if not part.is_multipart():
            part.get_content()  # decodes cleanly (charset, transfer encoding)
    return msg


def provider_addresses(raw: bytes, name: str) -> list[tuple[str, str]]:
    """Addresses of header ``name`` as two kinds of receivers see them: the modern parser (RFC 2047-aware) and
    the classic ``getaddresses`` on the unfolded raw value; both must agree or the test fails."""
    modern = email.message_from_bytes(raw, policy=policy.default)[name]
    parsed = [(a.display_name, a.addr_spec) for a in modern.addresses]
    classic = [addr for _name, addr in getaddresses([unfolded(raw, name)])]
    assert classic == [addr for _n, addr in parsed], (classic, parsed)
    return parsed
