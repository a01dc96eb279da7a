"""The token endpoint's answer checked as RFC 6749 §5.1/§5.2 say, with plain values (panel.sage.tokens is pure)."""
from __future__ import annotations

import json

import pytest

from panel.sage.tokens import MAX_TOKEN_CHARS, TokenError, parse

GOOD = {"access_token": "at", "token_type": "Bearer", "expires_in": 480, "refresh_token": "rt",
        "refresh_token_expires_in": 7776000, "scope": "openid offline_access"}


def answer(status=200, **changes):
    data = dict(GOOD, **changes)
    return parse(status, json.dumps({k: v for k, v in data.items() if v is not ...}).encode(), "openid profile")


def test_a_good_answer():
    assert answer() == {"access_token": "at", "token_type": "Bearer", "refresh_token": "rt", "expires_in": 480,
                        "refresh_token_expires_in": 7776000, "scope": "openid offline_access"}


def test_scope_left_out_means_the_requested_one():
    assert answer(scope=...)["scope"] == "openid profile"
    assert parse(200, json.dumps(dict(GOOD, scope=None)).encode(), None)["scope"] is None  # a refresh: unchanged


def test_optional_fields_may_be_missing_and_numbers_may_be_strings():
    got = answer(expires_in="3600", refresh_token=..., refresh_token_expires_in=..., token_type="bearer")
    assert got["expires_in"] == 3600 and got["refresh_token"] is None and got["refresh_token_expires_in"] is None


@pytest.mark.parametrize("changes, why", [
    ({"access_token": 12345}, "access_token is not a non-empty string"),
    ({"access_token": ["a", "b"]}, "access_token is not a non-empty string"),
    ({"access_token": {"a": 1}}, "access_token is not a non-empty string"),
    ({"access_token": ""}, "access_token is not a non-empty string"),
    ({"access_token": ...}, "access_token is not a non-empty string"),
    ({"access_token": "x" * (MAX_TOKEN_CHARS + 1)}, "longer than"),
    ({"access_token": "tab\there"}, "characters a token cannot have"),
    ({"access_token": "caf\u00e9"}, "characters a token cannot have"),
    ({"refresh_token": 7}, "refresh_token is not a non-empty string"),
    ({"token_type": ...}, "token_type is not Bearer"),
    ({"token_type": "mac"}, "token_type is not Bearer"),
    ({"expires_in": 10 ** 15}, "expires_in is out of bounds"),
    ({"expires_in": 0}, "expires_in is out of bounds"),
    ({"expires_in": -5}, "expires_in is out of bounds"),
    ({"expires_in": True}, "expires_in is not a whole number"),
    ({"expires_in": 3.5}, "expires_in is not a whole number"),
    ({"expires_in": "soon"}, "expires_in is not a whole number"),
    ({"expires_in": "1" * 20}, "expires_in is not a whole number"),
    ({"refresh_token_expires_in": 10 ** 12}, "refresh_token_expires_in is out of bounds"),
    ({"scope": 7}, "scope is not a string"),
    ({"scope": "openid \"quoted\""}, "scope has characters"),
])
def test_malformed_answers_are_refused(changes, why):
    with pytest.raises(TokenError) as err:
        answer(**changes)
    assert err.value.code == "bad_answer" and why in err.value.description and not err.value.terminal


@pytest.mark.parametrize("body", [b"<h1>oops</h1>", b"[1, 2]", b"\xff\xfe", b"null", b""])
def test_bodies_that_are_not_a_json_object(body):
    with pytest.raises(TokenError, match="bad_answer"):
        parse(200, body, None)


@pytest.mark.parametrize("error, terminal", [
    ("invalid_grant", True), ("invalid_scope", True), ("invalid_client", True), ("unauthorized_client", True),
    ("unsupported_grant_type", True), ("invalid_request", True),
    ("temporarily_unavailable", False), ("server_error", False), ("something_new", False),
])
def test_error_answers(error, terminal):
    body = json.dumps({"error": error, "error_description": "<b>why</b>\r\nnot"}).encode()
    with pytest.raises(TokenError) as err:
        parse(400, body, None)
    assert (err.value.code, err.value.terminal) == (error, terminal)
    assert err.value.description == "<b>why</b>not"  # control characters and quotes stripped; escaped on render


@pytest.mark.parametrize("status, body, code", [
    (503, b"<h1>Service Unavailable</h1>", "http_503"),
    (400, b"{}", "http_400"),
    (400, json.dumps({"error": 12}).encode(), "http_400"),
])
def test_errors_without_an_oauth_code(status, body, code):
    with pytest.raises(TokenError) as err:
        parse(status, body, None)
    assert err.value.code == code and not err.value.terminal
