"""The session cookie as it travels: raw Set-Cookie bytes from the live server, in production and development."""
from __future__ import annotations

import socket

from cryptography.fernet import Fernet
from support import base_env, start_live


def set_cookies(port: int, path: str = "/login") -> list[bytes]:
    """Every raw Set-Cookie header line of a GET over a plain socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0]
    return [line for line in head.split(b"\r\n") if line.lower().startswith(b"set-cookie:")]


def production_env(redis_server) -> dict:
    return base_env(PANEL_ENV="production", SAGE_CLIENT_ID="id", SAGE_CLIENT_SECRET="secret", MAIL_SERVER="smtp",
                    PANEL_BASE_URL="https://crm.example.com", PANEL_ALLOW_SQLITE="1", REDIS_URL=redis_server,
                    PANEL_ENCRYPTION_KEYS=Fernet.generate_key().decode())


def attributes(line: bytes) -> tuple[bytes, set[bytes]]:
    name_value, *attrs = line.split(b":", 1)[1].strip().split(b"; ")
    return name_value.split(b"=", 1)[0], {a.split(b"=")[0].lower() if b"=" not in a else a.lower() for a in attrs}


def test_production_session_cookie_has_the_host_prefix(tmp_path, template_db, redis_server):
    with start_live(tmp_path, template_db, redis_server, ENV_VARS=production_env(redis_server),
                    PANEL_BASE_URL="https://crm.example.com") as server:
        (line,) = set_cookies(server.port)
    name, attrs = attributes(line)
    assert name == b"__Host-panel_session"
    # What the browser requires of __Host-: Secure, Path=/, no Domain. Plus HttpOnly and SameSite=Lax.
    assert {b"secure", b"httponly", b"path=/", b"samesite=lax"} <= attrs
    assert not any(a.startswith(b"domain") for a in attrs)


def test_development_cookie_has_no_prefix_and_no_secure(live_server):
    (line,) = set_cookies(live_server.port)
    name, attrs = attributes(line)
    assert name == b"panel_session"  # plain http on a laptop: __Host- would need Secure
    assert {b"httponly", b"path=/", b"samesite=lax"} <= attrs and b"secure" not in attrs
