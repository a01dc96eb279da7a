"""A local HTTP server standing in for a Teams/Slack-style incoming webhook: records every POST (path and JSON
body) and answers as told — 200, an error status, or nothing for a while (a stalled service)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    """``with Webhook() as hook: hook.url("json")`` → ``json://127.0.0.1:<port>/hook/<secret>``; ``hook.posts``."""

    SECRET = "s3cr3t-webhook-token-0123456789"

    def __init__(self, port: int = 0):
        self.posts: list[dict] = []
        self.status = 200
        self.stall = 0.0  # seconds to wait before answering
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    data = json.loads(body or b"null")
                except ValueError:
                    data = None
                with hook.lock:
                    hook.posts.append({"path": self.path, "json": data})
                if hook.stall:
                    time.sleep(hook.stall)
                try:
                    self.send_response(hook.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_port

    def url(self, scheme: str = "json") -> str:
        """The Apprise URL of this webhook: json:// (generic JSON) or mmost:// (Slack-compatible payload)."""
        if scheme == "mmost":
            return f"mmost://127.0.0.1:{self.port}/{self.SECRET}"
        return f"{scheme}://127.0.0.1:{self.port}/hook/{self.SECRET}"

    def texts(self) -> list[str]:
        """Each message's text (JSON webhooks: title + message; Slack-style: text)."""
        out = []
        for post in self.posts:
            data = post["json"] or {}
            out.append(data.get("text") or f"{data.get('title', '')}\n{data.get('message', '')}")
        return out

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
