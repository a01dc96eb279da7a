"""A small local HTTP server standing in for Sage ID's token endpoint or the Sage API — and misbehaving on demand:
wrong types, error answers, huge bodies, bytes dripped one at a time. It records every request it gets."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

DRIP_SECONDS = 0.25
GOOD_TOKEN = {"access_token": "fresh-access", "token_type": "Bearer", "expires_in": 480,
              "refresh_token": "fresh-refresh", "refresh_token_expires_in": 90 * 86400}


class Provider:
    """``answer`` says what the next requests get: ("json", status, object), ("raw", status, bytes),
    ("drip_body", …), ("drip_headers", …), ("huge", declared: bool)."""

    def __init__(self):
        self.answer = ("json", 200, GOOD_TOKEN)
        self.requests: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                provider.requests.append({"path": self.path, "form": form, "headers": dict(self.headers)})
                provider.respond(self)

            def do_GET(self):  # noqa: N802
                provider.requests.append({"path": self.path, "form": {}, "headers": dict(self.headers)})
                provider.respond(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a dripping answer must not hold the test up once the client left
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def respond(self, h: BaseHTTPRequestHandler) -> None:
        """Answer one request as ``answer`` says."""
        kind, *rest = self.answer
        try:
            if kind in ("json", "raw"):
                status, payload = rest
                body = payload if kind == "raw" else json.dumps(payload).encode()
                h.send_response(status)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
            elif kind == "drip_body":  # headers at once, then one byte every DRIP_SECONDS (about a minute in all)
                body = json.dumps(GOOD_TOKEN).encode().ljust(240)
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                for byte in body:
                    h.wfile.write(bytes([byte]))
                    h.wfile.flush()
                    time.sleep(DRIP_SECONDS)
            elif kind == "drip_headers":  # even the status line and headers, one byte at a time
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"p" * 200 + b"\r\n"
                for byte in head:
                    h.wfile.write(bytes([byte]))
                    h.wfile.flush()
                    time.sleep(DRIP_SECONDS)
            elif kind == "huge":  # a 20 MB access token, with or without a Content-Length saying so
                (declared,) = rest
                size = 20 * 1024 * 1024
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                if declared:
                    h.send_header("Content-Length", str(size + 64))
                h.end_headers()
                h.wfile.write(b'{"token_type": "Bearer", "access_token": "')
                for _ in range(size // 65536):
                    h.wfile.write(b"a" * 65536)
                h.wfile.write(b'"}')
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
