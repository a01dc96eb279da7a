"""A strict Sage ID stand-in over real HTTP: refresh-token rotation with reuse detection (as the demo SageID and
Sage ID's rotation do), optionally slow, and the Sage 200 ``GET /sites``.

Each refresh token works once: presenting one that was already used — even while the request that used it is
still being answered — revokes the whole grant (as the demo SageID does). A slow answer is slow AFTER the rotation is committed, as a server's is: the client that gave
up never learns the new refresh token, but the old one is spent.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

SITES = [{"site_id": "s1", "site_name": "Head office", "company_id": 1, "company_name": "Demo Ltd"}]


class RotatingProvider:
    """``with RotatingProvider("r", delay=2.5) as p: p.url``; ``presented`` lists (monotonic time, refresh token)."""

    def __init__(self, refresh_token: str = "r", access_token: str = "a", delay: float = 0.0):
        self.current, self.access, self.delay = refresh_token, access_token, delay
        self.used: set[str] = set()
        self.revoked = False
        self.presented: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = provider.refresh(form.get("refresh_token", ""))
                self._send(status, body)

            def do_GET(self):  # noqa: N802
                ok = self.headers.get("Authorization") == f"Bearer {provider.access}" and not provider.revoked
                self._send(200 if ok else 401, SITES if ok else {"message": "invalid token"})

            def _send(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up; what was done is done

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def refresh(self, token: str) -> tuple[int, dict]:
        """Rotate ``token`` (then wait ``delay``), or refuse it; reuse revokes the grant."""
        with self.lock:
            self.presented.append((time.monotonic(), token))
            if self.revoked or token in self.used:
                self.revoked = True
                answer = (400, {"error": "invalid_grant", "error_description": "refresh token reuse detected"})
            elif token != self.current:
                answer = (400, {"error": "invalid_grant", "error_description": "unknown refresh token"})
            else:
                self.used.add(token)
                self.current, self.access = secrets.token_hex(8), secrets.token_hex(8)
                answer = (200, {"access_token": self.access, "token_type": "Bearer", "expires_in": 480,
                                "refresh_token": self.current})
        time.sleep(self.delay)
        return answer

    def __enter__(self) -> "RotatingProvider":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
