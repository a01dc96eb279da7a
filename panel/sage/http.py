"""Outgoing HTTP to Sage ID and the Sage API, with hard limits a misbehaving server cannot stretch.

- A TOTAL deadline for the whole exchange — connect, send, status line, headers and body — not a per-read
  timeout, which a server dripping one byte at a time resets for ever. httpx runs on anyio here, and
  ``anyio.fail_after`` cancels the exchange wherever it is when the deadline passes.
- A cap on the body: a declared Content-Length over it is refused before reading, and reading stops as soon as
  the body passes it. Compression is refused (``Accept-Encoding: identity``), so the cap is on what is kept.
- No redirects are followed (ASVS 15.3.2).
- A failure says whether the request may have reached the server (``HttpFailure.sent``, from httpcore's trace
  events): a refresh that was sent and got no answer has an unknown outcome (``panel/sage/refresh.py``).
"""
from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import anyio
import httpx


class HttpFailure(Exception):
    """The exchange did not complete; ``kind`` is ``timeout``, ``too_large`` or ``unreachable``; ``sent`` is False
    only when no byte of the request can have reached the server (it failed while connecting)."""

    def __init__(self, kind: str, detail: str = "", sent: bool = True):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind, self.sent = kind, sent


@dataclass(frozen=True)
class Reply:
    """A complete answer: status, headers and the whole (capped) body."""

    status: int
    headers: httpx.Headers
    body: bytes

    def json(self):
        """The body parsed as JSON (ValueError when it is not JSON)."""
        return json.loads(self.body.decode("utf-8"))


def request(method: str, url: str, *, deadline: float, max_bytes: int, data: dict | None = None,
            headers: dict | None = None) -> Reply:
    """Send one request and read the whole answer within ``deadline`` seconds and ``max_bytes`` bytes."""
    sent_headers = {"Accept-Encoding": "identity", **(headers or {})}
    sending = []

    async def trace(event: str, _info: dict) -> None:
        if event.startswith(("http11.send_request", "http2.send_request")):
            sending.append(event)  # from here on, the server may have (part of) the request

    async def exchange() -> Reply:
        with anyio.fail_after(deadline):
            async with httpx.AsyncClient(timeout=deadline, follow_redirects=False) as client:
                async with client.stream(method, url, data=data, headers=sent_headers,
                                         extensions={"trace": trace}) as resp:
                    declared = resp.headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise HttpFailure("too_large", f"declared {declared} bytes")
                    if resp.headers.get("Content-Encoding", "identity").lower() != "identity":
                        raise HttpFailure("too_large", "compressed answer refused")
                    body = bytearray()
                    async for chunk in resp.aiter_raw():
                        body += chunk
                        if len(body) > max_bytes:
                            raise HttpFailure("too_large", f"over {max_bytes} bytes")
                    return Reply(resp.status_code, resp.headers, bytes(body))

    try:
        return _run(exchange)
    except HttpFailure:
        raise  # too large: an answer came, so the request got there (sent=True)
    except TimeoutError as exc:  # the total deadline ran out (anyio.fail_after)
        raise HttpFailure("timeout", f"no complete answer within {deadline} s", bool(sending)) from exc
    except httpx.TimeoutException as exc:
        raise HttpFailure("timeout", str(exc), bool(sending)) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise HttpFailure("unreachable", f"{type(exc).__name__}: {exc}", bool(sending)) from exc


def _run(exchange):
    """``anyio.run`` in this thread — or in a thread of its own when this one already runs an event loop (anyio
    refuses to start a second one there; e.g. a caller driving Playwright's sync API)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(exchange)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, exchange).result()
