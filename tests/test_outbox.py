"""The demo outbox (no MAIL_SERVER): the same bytes as SMTP would carry, written to .eml files and listed with the
raw headers, the text part, and the HTML part in a sandboxed iframe served under its own CSP."""
from __future__ import annotations

import base64
import hashlib
import html
import re
from datetime import timedelta
from pathlib import Path

from mail_fixtures import NOW, THREE, messages_for
from mail_fixtures import mail_app, smtp  # noqa: F401  (fixtures)
from support import Session, connect_sage
from wire import assert_wire_ok, field, strict

from panel.reminders import delivery
from panel.settings import outbox


def outbox_files(app) -> list[Path]:
    return sorted((Path(app.instance_path) / "outbox").glob("*.eml"))


def test_demo_outbox_writes_eml_files_and_lists_them(app, admin, user, other_admin):
    assert delivery.uses_outbox(app.config)
    with app.app_context():
        results = delivery.send_batch(messages_for(*THREE))
    assert all(r.sent and "demo outbox" in r.reason for r in results)
    files = outbox_files(app)
    assert len(files) == 3
    assert 'href="/settings/sage/outbox"' in admin.get("/settings/sage").text
    page = admin.get("/settings/sage/outbox")
    assert page.status_code == 200 and page.text.count('class="card outbox-message"') == 3
    assert "Sage token expires in 28 days" in page.text and "chloe@example.com" in page.text
    download = admin.get(f"/settings/sage/outbox/{files[0].name}")
    assert download.status_code == 200 and download.mimetype == "message/rfc822"
    assert download.data == files[0].read_bytes()
    assert "No emails yet" in other_admin.get("/settings/sage/outbox").text  # another company's mail stays hidden
    assert other_admin.get(f"/settings/sage/outbox/{files[0].name}").status_code == 404
    assert other_admin.get(f"/settings/sage/outbox/{files[0].name}/html").status_code == 404
    assert admin.get("/settings/sage/outbox/..%2Fsecret_key").status_code == 404
    assert admin.get("/settings/sage/outbox/..%2Fsecret_key/html").status_code == 404
    assert user.get("/settings/sage/outbox").status_code == 403
    assert user.get(f"/settings/sage/outbox/{files[0].name}/html").status_code == 403


def test_the_outbox_file_passes_the_same_wire_checks_as_smtp(app):
    """The outbox file holds the bytes SMTP would carry (``Outgoing.raw``): the same checks hold."""
    with app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=5))
        delivery.send_batch(messages_for("admin@example.com", token=token))
    written = outbox_files(app)[0].read_bytes()
    msg = strict(written)
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/calendar"]
    [line] = field(written, "List-Unsubscribe")
    assert re.fullmatch(rb"List-Unsubscribe: <https://panel\.example/unsubscribe/[A-Za-z0-9_.-]+>", line), line
    assert_wire_ok(written)


def test_the_page_shows_raw_headers_and_the_html_part_in_a_sandboxed_iframe(app, admin):
    with app.app_context():
        delivery.send_batch(messages_for("admin@example.com"))
    [path] = outbox_files(app)
    page = admin.get("/settings/sage/outbox")
    headers = re.search(r'data-testid="raw-headers">([^<]*)</pre>', page.text).group(1)
    raw_head = path.read_bytes().partition(b"\r\n\r\n")[0].decode("ascii")
    assert html.unescape(headers) == raw_head  # exactly what travels, encoded-words and all
    assert "List-Unsubscribe: &lt;http" in headers and "=?utf-8?" in headers  # not decoded
    iframe = re.search(r"<iframe[^>]*>", page.text).group(0)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in iframe  # no scripts, no same origin, no forms
    assert f'src="/settings/sage/outbox/{path.name}/html"' in iframe
    csp = page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp  # the page's own CSP is unchanged


def test_the_html_part_is_served_with_its_own_restrictive_csp(app, admin):
    with app.app_context():
        delivery.send_batch(messages_for("admin@example.com"))
    [path] = outbox_files(app)
    resp = admin.get(f"/settings/sage/outbox/{path.name}/html")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert resp.text == strict(path.read_bytes()).get_body(("html",)).get_content()
    csp = dict(d.strip().split(" ", 1) for d in resp.headers["Content-Security-Policy"].split(";"))
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    assert csp["default-src"] == "'none'" and "script-src" not in csp  # no script can run: default-src 'none'
    assert csp["sandbox"] == "allow-popups allow-popups-to-escape-sandbox"
    assert csp["frame-ancestors"] == "'self'" and resp.headers["X-Frame-Options"] == "SAMEORIGIN"
    # Each inline style of the message is allowed by its own hash, and nothing else.
    styles = set(re.findall(r'style="([^"]*)"', resp.text))
    allowed = set(re.findall(r"'sha256-([^']+)'", csp["style-src"]))
    assert styles and allowed == {base64.b64encode(hashlib.sha256(html.unescape(s).encode()).digest()).decode()
                                  for s in styles}
    assert csp["style-src"].startswith("'unsafe-hashes' ")


def test_html_csp_without_styles_allows_none():
    assert "style-src 'none'" in outbox.html_csp("<p>plain</p>")


def test_no_outbox_with_a_mail_server(mail_app):
    admin = Session(mail_app.test_client(), "admin@example.com")
    assert admin.get("/settings/sage/outbox").status_code == 404
    assert "Demo outbox" not in admin.get("/settings/sage").text
    with mail_app.app_context():
        assert outbox.entries(1) == []
