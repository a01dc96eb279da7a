"""The alerts card in Chromium: zero axe violations in every state (light and dark), keyboard-only use (switch,
add, send test, remove), a clean console under the CSP, and the widget's broken state."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from support import connect_sage, sign_in, start_live
from test_axe_and_console import Audit, watch_console
from webhook_server import Webhook

from panel import clock
from panel.sage import check_state
from panel.sage.check import Kind, Outcome


@pytest.fixture
def live(tmp_path, template_db, redis_server):
    with start_live(tmp_path, template_db, redis_server, PANEL_CHANNEL_ALLOW_PRIVATE=True,
                    PANEL_CHANNEL_TIMEOUT=2) as server:
        yield server
    clock.freeze(None)


@pytest.fixture
def hook():
    with Webhook() as server:
        yield server


def broken(app) -> None:
    """The daily check found the connection broken (as the worker would record it)."""
    with app.app_context():
        token = connect_sage()
        check_state.record(token.company_id, Outcome(Kind.BROKEN, "The Sage API refused the request (403): "
                                                     "subscription lapsed."), token.generation, clock.now())


def test_alerts_card_states_have_no_axe_violations(browser, live, hook):
    context = browser.new_context(bypass_csp=True, color_scheme="light")
    page = context.new_page()
    check = Audit(page)
    broken(live.app)
    sign_in(page, live.url)
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Connection broken")
    expect(page.get_by_test_id("token-problem")).to_contain_text("subscription lapsed")
    expect(page.get_by_test_id("token-problem")).to_contain_text("since")
    check("widget: connection broken; alerts card without channels")
    card = page.locator("#alerts-card")
    card.get_by_label("Webhook or Apprise URL").fill("garbage")
    card.get_by_role("button", name="Add channel").click()
    expect(card.locator("#channel-url-error")).to_be_visible()
    check("channel URL error")
    card.get_by_label("Webhook or Apprise URL").fill(hook.url("json"))
    card.get_by_label("Name").fill("Ops channel")
    card.get_by_role("button", name="Add channel").click()
    expect(card.get_by_test_id("channel-result")).to_contain_text("Added Ops channel")
    check("channel added")
    card.get_by_role("button", name="Send test to Ops channel").click()
    expect(card.get_by_test_id("channel-result")).to_contain_text("Sent a test message")
    check("test sent")
    hook.status = 500
    card.get_by_role("button", name="Send test to Ops channel").click()
    expect(card.get_by_test_id("channel-result")).to_contain_text("Couldn't send")
    check("test failed")
    card.get_by_role("switch", name="Daily connection check").click()
    expect(card.get_by_role("switch", name="Daily connection check")).to_have_attribute("aria-checked", "false")
    check("check switched off")
    page.goto(f"{live.url}/demo-sageid/apps")
    page.get_by_label("Email address").fill("sage.demo@example.com")
    page.get_by_label("Password").fill("demo-sage-200")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Connected apps")).to_be_visible()
    check("demo Sage ID: connected apps")
    context.close()
    check.assert_clean()


def test_keyboard_only_with_a_clean_console(page, live, hook):
    problems = watch_console(page)
    with live.app.app_context():
        connect_sage()
    sign_in(page, live.url)
    card = page.locator("#alerts-card")
    switch = card.get_by_role("switch", name="Daily connection check")
    switch.focus()
    page.keyboard.press("Space")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_be_focused()  # the card was swapped; focus stayed on the switch
    page.keyboard.press("Enter")
    expect(switch).to_have_attribute("aria-checked", "true")
    card.get_by_label("Webhook or Apprise URL").focus()
    page.keyboard.type(hook.url("mmost"))
    page.keyboard.press("Tab")
    expect(card.get_by_label("Name")).to_be_focused()
    page.keyboard.type("Slack-style")
    page.keyboard.press("Enter")
    result = card.get_by_test_id("channel-result")
    expect(result).to_contain_text("Added Slack-style")
    expect(card.get_by_label("Name")).to_be_focused()  # ready for another; the result is announced
    test = card.get_by_role("button", name="Send test to Slack-style")
    test.focus()
    page.keyboard.press("Enter")
    expect(result).to_contain_text("Sent a test message to Slack-style")
    expect(test).to_be_focused()
    assert len(hook.posts) == 1
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Remove Slack-style").focus()
    page.keyboard.press("Enter")
    expect(result).to_contain_text("Removed Slack-style")
    expect(result).to_be_focused()
    expect(card.get_by_test_id("no-channels")).to_be_visible()
    assert problems == []
