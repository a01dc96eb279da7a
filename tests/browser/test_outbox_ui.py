"""The demo outbox in Chromium: the HTML part renders in its sandboxed iframe with the message's own styles applied
(allowed by hash), no script runs, and no Content-Security-Policy violation is reported."""
from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from support import connect_sage, sign_in

from panel import clock
from panel.extensions import db
from panel.models import User
from panel.reminders import delivery
from panel.reminders.mail import compose_reminder


def test_the_html_part_renders_styled_in_a_sandbox(page, live_server):
    app = live_server.app
    with app.app_context():
        alice = User.query.filter_by(email="admin@example.com").one()
        token = connect_sage(expires_at=clock.now() + timedelta(days=5))
        [sent] = delivery.send_batch([compose_reminder(alice.company, alice, token, clock.now(),
                                                        app.config["PANEL_BASE_URL"])])
        db.session.remove()
    assert sent.sent
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None)
    sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/settings/sage/outbox")
    expect(page.get_by_test_id("raw-headers")).to_contain_text("List-Unsubscribe: <http://127.0.0.1:")
    frame = page.frame_locator("iframe.outbox-html")
    button = frame.get_by_role("link", name="Renew the Sage token")
    expect(button).to_be_visible()
    # The message's inline styles apply (each allowed by its hash): the button is the email's green.
    expect(button).to_have_css("background-color", "rgb(11, 110, 79)")
    # The framed document is sandboxed into an opaque origin: not even the panel's own page can reach into it (and
    # so it cannot reach the panel's cookies or DOM either).
    assert page.evaluate("() => document.querySelector('iframe.outbox-html').contentDocument") is None
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
