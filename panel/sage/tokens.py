"""PURE: the token endpoint's answer, checked as RFC 6749 defines it (§5.1 success, §5.2 error) before any of it
is stored or trusted: types, characters, sizes and bounds. Imports nothing from Flask or the database."""
from __future__ import annotations

import json
import re

MAX_BODY_BYTES = 64 * 1024              # the whole answer; a real one is a few KB
MAX_TOKEN_CHARS = 16 * 1024             # one access or refresh token (Sage ID's JWTs are 1–3 KB)
MAX_EXPIRES_IN = 366 * 86400            # an access token lives at most a year
MAX_REFRESH_EXPIRES_IN = 5 * 366 * 86400  # the consent at most five years (Sage ID: 90 days by default)
MAX_SCOPE_CHARS = 500                   # the column that keeps the granted scope
MAX_DESCRIPTION_CHARS = 200

_VSCHAR = re.compile(r"[\x20-\x7e]+")                # RFC 6749 Appendix A: access-token, refresh-token
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # scope-token
_NQSCHAR = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")  # error, error_description
_DIGITS = re.compile(r"[0-9]{1,12}")

# Errors that sending the same grant again can never fix: only a new Login Now (a new grant) helps.
TERMINAL = frozenset({"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type",
                      "invalid_scope", "invalid_request"})


class TokenError(Exception):
    """The token endpoint refused, or answered something unusable.

    ``code`` is the OAuth error code (or ``bad_answer`` / ``http_<status>``), ``description`` the provider's text
    made safe to show, ``terminal`` True when retrying cannot help.
    """

    def __init__(self, code: str, description: str = "", terminal: bool = False):
        super().__init__(f"{code}: {description}" if description else code)
        self.code, self.description, self.terminal = code, description, terminal

    def reason(self) -> str:
        """One line for people: the code and the provider's description."""
        return f"{self.code}: {self.description}" if self.description else self.code


def _bad(what: str) -> TokenError:
    return TokenError("bad_answer", what)


def _printable(value, limit: int) -> str:
    """Provider text made safe to show and store: NQSCHAR only, cut to ``limit``."""
    if not isinstance(value, str):
        return ""
    return "".join(_NQSCHAR.findall(value))[:limit]


def _token(data: dict, key: str, required: bool) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(f"{key} is not a non-empty string")
    if len(value) > MAX_TOKEN_CHARS:
        raise _bad(f"{key} is longer than {MAX_TOKEN_CHARS} characters")
    if not _VSCHAR.fullmatch(value):
        raise _bad(f"{key} has characters a token cannot have")
    return value


def _seconds(data: dict, key: str, most: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)  # some providers send numbers as strings
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{key} is not a whole number of seconds")
    if not 1 <= value <= most:
        raise _bad(f"{key} is out of bounds (1 to {most})")
    return value


def _scope(data: dict) -> str | None:
    value = data.get("scope")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_SCOPE_CHARS:
        raise _bad("scope is not a string of scope tokens")
    parts = value.split()
    if not all(_SCOPE_TOKEN.fullmatch(p) for p in parts):
        raise _bad("scope has characters a scope cannot have")
    return " ".join(parts) or None


def _error(status: int, data) -> TokenError:
    code = data.get("error") if isinstance(data, dict) else None
    if not isinstance(code, str) or not _NQSCHAR.fullmatch(code) or len(code) > 60:
        if 500 <= status or status == 429:
            return TokenError(f"http_{status}", "the server is unavailable")
        return TokenError(f"http_{status}", "no OAuth error code in the answer")
    return TokenError(code, _printable(data.get("error_description"), MAX_DESCRIPTION_CHARS), code in TERMINAL)


def parse(status: int, body: bytes, requested_scope: str | None) -> dict:
    """The checked token answer as a dict: access_token, token_type, refresh_token, expires_in,
    refresh_token_expires_in and scope (the granted scope; ``requested_scope`` when the answer leaves it out, as
    §5.1 allows only when it is identical). Raises TokenError for an error answer or anything malformed."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if status != 200:
        raise _error(status, data)
    if not isinstance(data, dict):
        raise _bad("the answer is not a JSON object")
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise _bad("token_type is not Bearer")
    return {
        "access_token": _token(data, "access_token", required=True),
        "token_type": "Bearer",
        "refresh_token": _token(data, "refresh_token", required=False),
        "expires_in": _seconds(data, "expires_in", MAX_EXPIRES_IN),
        "refresh_token_expires_in": _seconds(data, "refresh_token_expires_in", MAX_REFRESH_EXPIRES_IN),
        "scope": _scope(data) or requested_scope,
    }
