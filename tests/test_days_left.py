"""One definition of "days left" (``panel.sage.status.days_left``): the subject, the email's body and the widget
say the same figure at every instant — far out, on the last day, at the expiry instant and after it."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from mail_fixtures import BASE, NOW, people, send_and_receive
from mail_fixtures import mail_app, smtp  # noqa: F401  (fixtures)
from support import Session, connect_sage
from wire import strict

from panel import clock
from panel.reminders.mail import compose_reminder
from panel.sage.status import days_left, token_status

INSTANTS = {
    # time left at NOW: (subject after "Sage token ", widget's leading figure, days_left)
    "the reported case": (timedelta(days=90) - timedelta(hours=1), "expires in 89 days", "89 days", 89),
    "twelve days and a bit": (timedelta(days=12, hours=2), "expires in 12 days", "12 days", 12),
    "exactly one day": (timedelta(days=1), "expires in 1 day", "1 day", 1),
    "the last day": (timedelta(hours=23, minutes=59), "expires in 23 hours", "23 hours", 0),
    "the last hour": (timedelta(minutes=42, seconds=10), "expires in 42 minutes", "42 minutes", 0),
    "seconds left": (timedelta(seconds=20), "expires in less than a minute", "less than a minute", 0),
    "the expiry instant": (timedelta(0), "expired just now", "expired just now", 0),
    "two hours after": (-timedelta(hours=2, minutes=5), "expired 2 hours ago", "expired 2 hours ago", 0),
    "three days after": (-timedelta(days=3, hours=5), "expired 3 days ago", "expired 3 days ago", -3),
}


def widget_figure(fragment: str) -> tuple[str, str]:
    """(the widget's time-left text, its leading figure) as the person sees them."""
    found = re.search(r'data-testid="remaining">([^<]+)<', fragment)
    if found:
        text = found.group(1)
    else:  # expired: "Expired 3 days ago — Sage sync has stopped."
        text = re.search(r'class="widget-sub">([^<]+?) — Sage sync has stopped', fragment).group(1).lower()
    text = html.unescape(text)
    return text, text.split(", ", 1)[0]


@pytest.fixture
def frozen():
    clock.freeze(NOW)
    yield
    clock.freeze(None)


@pytest.mark.parametrize("case", list(INSTANTS))
def test_subject_body_and_widget_agree(mail_app, smtp, frozen, case):
    left, subject, figure, days = INSTANTS[case]
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + left)
        alice, = people("admin@example.com")
        raw = send_and_receive(smtp, compose_reminder(alice.company, alice, token, NOW, BASE)).raw
    widget = Session(mail_app.test_client(), "admin@example.com").get("/settings/sage/widget", htmx=True).text
    shown, leading = widget_figure(widget)
    msg = strict(raw)
    assert msg["Subject"].startswith(f"Sage token {subject} — ")
    assert leading == figure
    assert days_left(left) == days
    text = msg.get_body(("plain",)).get_content()
    assert re.search(rf"Time left: +(none — )?{re.escape(shown)}\r?\n", text), (shown, text)


def test_the_status_carries_the_same_figures():
    status = token_status(NOW, consented_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=89, hours=23),
                          reminder_days=28, tz_name="Europe/London")
    assert (status.days_left, status.headline, status.remaining_text) == (89, "89 days", "89 days, 23 hours")
    assert token_status(NOW, consented_at=None, expires_at=None, reminder_days=28,
                        tz_name="Europe/London").days_left is None
