"""Request bodies are capped at 64 KB over real HTTP: 413 from the Content-Length before the body is read, and a
chunked (length-less) multipart upload is cut off once it passes the cap."""
from __future__ import annotations

import socket
import time

import pytest

CAP = 64 * 1024


def raw(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def read_status(sock: socket.socket) -> str:
    """The status line of the answer (reads until the headers are complete or the server closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


@pytest.mark.parametrize("path, content_type", [
    ("/login", "application/x-www-form-urlencoded"),
    ("/login", "multipart/form-data; boundary=x"),
    ("/settings/sage/reminders/days", "application/x-www-form-urlencoded"),
    ("/demo-sageid/oauth/token", "application/x-www-form-urlencoded"),
    ("/unsubscribe/some-token", "application/x-www-form-urlencoded"),
])
def test_declared_huge_body_gets_413_without_being_read(live_server, path, content_type):
    sock = raw(live_server.port)
    # Claims 100 MB, sends 1 KB and waits: an answer can only come if nothing tried to read the rest.
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {100 * 1024 * 1024}\r\n\r\n".encode() + b"a=" + b"x" * 1024)
    started = time.monotonic()
    assert read_status(sock) == "HTTP/1.1 413 REQUEST ENTITY TOO LARGE"
    assert time.monotonic() - started < 8  # the 10 s socket timeout would have fired first otherwise
    sock.close()


def test_chunked_multipart_upload_is_cut_off_at_the_cap(live_server):
    sock = raw(live_server.port)
    sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Type: multipart/form-data; boundary=BOUNDARY\r\n\r\n")
    part = (b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n")
    chunk = b"y" * 65536
    sent = 0
    sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
    try:
        while sent < 200 * 1024 * 1024:  # a 200 MB upload, unless the server stops it
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            sock.settimeout(0.0)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the server answered
            except BlockingIOError:
                pass
            finally:
                sock.settimeout(10)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection after answering
    assert sent < 8 * 1024 * 1024, f"server kept reading: {sent} bytes"
    assert read_status(sock) == "HTTP/1.1 413 REQUEST ENTITY TOO LARGE"
    sock.close()


def test_forms_under_the_cap_still_work(admin):
    resp = admin.post("/settings/sage/reminders/days", data={"reminder_days": "14", "pad": "z" * (CAP - 2048)})
    assert resp.status_code == 200 and "Saved" in resp.text


def test_just_over_the_cap_is_refused_with_a_clear_page(admin):
    resp = admin.post("/settings/sage/reminders/days", htmx=False, data={"reminder_days": "14", "pad": "z" * CAP})
    assert resp.status_code == 413 and "too large" in resp.text.lower()
