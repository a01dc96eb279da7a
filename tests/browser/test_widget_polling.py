"""The widget's real timed polls in Chromium (a fake clock drives htmx's `every 60s`): the second poll carries the
ETag and gets 304, which leaves the widget in place and says "Updated HH:MM"; a change on the server swaps in the
new widget at the next poll; a failed poll shows the stale note and the next 304 clears it."""
from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from support import connect_sage, sign_in

from panel import clock
from panel.extensions import db
from panel.reminders import settings

MARK = "document.getElementById('token-widget').dataset.mark = 'seen'"
MARKED = "document.getElementById('token-widget').dataset.mark === 'seen'"


def next_poll(page) -> tuple:
    """Let a minute pass on the page's fake clock (htmx's `every 60s`); the poll's status, If-None-Match, ETag."""
    with page.expect_response(lambda r: r.url.endswith("/settings/sage/widget"), timeout=10_000) as info:
        page.clock.run_for(60_000)
    resp = info.value
    page.wait_for_timeout(100)  # htmx handles the answer (swap, or not for 304)
    return resp.status, resp.request.all_headers().get("if-none-match"), resp.headers.get("etag")


def test_timed_polls_are_conditional_and_304_keeps_the_widget(page, live_server):
    with live_server.app.app_context():
        connect_sage(expires_at=clock.now() + timedelta(days=50, minutes=40))
    live_server.app.config["PANEL_POLL_SYNC_SECONDS"] = 0.05
    page.clock.install()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    sign_in(page, live_server.url)
    widget = page.locator("#token-widget")
    expect(widget.get_by_test_id("token-state")).to_have_text("Connected")

    status, sent, etag = next_poll(page)  # the first poll after the page loaded: no ETag to send yet
    assert status == 200 and sent is None and etag.startswith('W/"')
    page.evaluate(MARK)
    for _ in range(4):  # four more minutes: four polls, each 304 Not Modified
        status, sent, again = next_poll(page)
        assert (status, sent, again) == (304, etag, etag)
    assert page.evaluate(MARKED)  # not swapped: the very same element
    shown = page.evaluate("new Intl.DateTimeFormat('en-GB', {hour: '2-digit', minute: '2-digit', hourCycle: 'h23', "
                          "timeZone: 'Europe/London'}).format(new Date())")
    expect(widget.locator("[data-updated]")).to_have_text(f"Updated {shown}")

    with live_server.app.app_context():
        settings.save(1, settings.SETTINGS["days"], 9, None)
        db.session.remove()
    status, sent, newer = next_poll(page)
    assert status == 200 and sent == etag and newer != etag
    expect(widget).to_contain_text("Reminder window (9 days)")
    assert not page.evaluate(MARKED)  # swapped in

    assert problems == []  # nothing in the console so far (the failure below logs its 503, as it should)
    page.route("**/settings/sage/widget", lambda route: route.fulfill(status=503, body="down"))
    assert next_poll(page)[0] == 503
    expect(widget.locator("[data-stale]")).to_be_visible()
    page.unroute("**/settings/sage/widget")
    status, sent, _ = next_poll(page)
    assert (status, sent) == (304, newer)
    expect(widget.locator("[data-stale]")).to_be_hidden()
