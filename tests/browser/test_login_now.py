"""Login Now in Chromium: the sign-in window, Grant, the window closes, the widget turns green without a reload."""
from __future__ import annotations

from playwright.sync_api import expect
from support import connect_sage, sign_in

DEMO_EMAIL, DEMO_PASSWORD = "sage.demo@example.com", "demo-sage-200"


def test_login_now_window_grant_closes_and_widget_turns_green(page, live_server):
    sign_in(page, live_server.url)
    widget = page.locator("#token-widget")
    expect(widget.get_by_test_id("token-state")).to_have_text("Not connected")
    page.evaluate("window.__noReload = 'still here'")  # lost if the page reloads

    with page.expect_popup() as popup_info:
        page.locator("#token-widget").get_by_role("button", name="Login Now").click()
    popup = popup_info.value
    popup.wait_for_load_state()
    assert "/demo-sageid/authorize" in popup.url
    popup.get_by_label("Email address").fill(DEMO_EMAIL)
    popup.get_by_label("Password").fill(DEMO_PASSWORD)
    popup.get_by_role("button", name="Sign in").click()
    expect(popup.get_by_role("button", name="Grant")).to_be_visible()
    with popup.expect_event("close", timeout=15000):
        popup.get_by_role("button", name="Grant").click()

    expect(widget.get_by_test_id("token-state")).to_have_text("Connected", timeout=5000)
    expect(widget).to_have_class("card widget widget-green")
    expect(widget.get_by_test_id("remaining")).to_contain_text("89 days")
    assert page.evaluate("window.__noReload") == "still here"
    expect(page.locator("#audit-list")).to_contain_text("Connected to Sage")


def test_blocked_popup_runs_the_flow_in_the_main_window(browser, live_server):
    context = browser.new_context()
    # Simulate a popup blocker: window.open returns null.
    context.add_init_script("window.open = function () { return null; };")
    page = context.new_page()
    sign_in(page, live_server.url)
    page.locator("#token-widget").get_by_role("button", name="Login Now").click()
    page.wait_for_url("**/demo-sageid/authorize**")
    page.get_by_label("Email address").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Grant").click()
    page.wait_for_url(f"{live_server.url}/settings/sage")
    expect(page.get_by_text("Connected to Sage. The token expires")).to_be_visible()
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Connected")
    context.close()


def test_deny_in_the_window_changes_nothing_and_says_so(page, live_server):
    sign_in(page, live_server.url)
    with page.expect_popup() as popup_info:
        page.locator("#token-widget").get_by_role("button", name="Login Now").click()
    popup = popup_info.value
    popup.get_by_label("Email address").fill(DEMO_EMAIL)
    popup.get_by_label("Password").fill(DEMO_PASSWORD)
    popup.get_by_role("button", name="Sign in").click()
    popup.get_by_role("button", name="Deny").click()
    expect(popup.get_by_role("alert")).to_contain_text("Access was not granted")
    expect(page.locator("#flash")).to_contain_text("Access was not granted")
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Not connected")


def test_poll_after_sign_out_sends_the_page_to_sign_in(page, live_server):
    sign_in(page, live_server.url)
    # Sign out in another tab of the same browser: this tab's session is gone.
    other = page.context.new_page()
    other.goto(f"{live_server.url}/settings/sage")
    other.get_by_role("button", name="Sign out").click()
    # Signed out (the server ended the session) before this tab polls; closing a tab mid-navigation can hang.
    expect(other.get_by_text("You have been signed out.")).to_be_visible()
    other.close()
    page.evaluate("htmx.trigger('#token-widget', 'panel-refresh')")  # what the 60 s poll does
    page.wait_for_url(f"{live_server.url}/login?next=/settings/sage")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.locator("#token-widget").count() == 0


def test_failed_poll_shows_stale_state(page, live_server):
    sign_in(page, live_server.url)
    page.route("**/settings/sage/widget", lambda route: route.fulfill(status=503, body="down"))
    page.evaluate("htmx.trigger('#token-widget', 'panel-refresh')")
    stale = page.locator("#token-widget [data-stale]")
    expect(stale).to_be_visible()
    expect(stale).to_contain_text("Couldn't refresh — last updated ")
    page.unroute("**/settings/sage/widget")
    page.evaluate("htmx.trigger('#token-widget', 'panel-refresh')")
    expect(page.locator("#token-widget [data-stale]")).to_be_hidden()


def test_hidden_tab_skips_polls(page, live_server):
    sign_in(page, live_server.url)
    polls = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/settings/sage/widget") else None)
    page.evaluate("Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true})")
    page.evaluate("htmx.trigger('#token-widget', 'panel-refresh')")
    page.wait_for_timeout(500)
    assert polls == []
    page.evaluate("Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});"
                  "document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_timeout(500)
    assert len(polls) == 1


def test_saving_reminder_days_recolours_the_widget_at_once(page, live_server):
    from datetime import timedelta

    with live_server.app.app_context():
        connect_sage(lifetime=timedelta(days=20))
    sign_in(page, live_server.url)
    widget = page.locator("#token-widget")
    expect(widget.get_by_test_id("token-state")).to_have_text("Renew soon")  # 20 days left, 28-day window
    page.evaluate("window.__noReload = 1")
    days = page.get_by_label("Reminder days")
    days.fill("7")
    days.press("Enter")
    expect(widget.get_by_test_id("token-state")).to_have_text("Connected")
    expect(widget).to_have_class("card widget widget-green")
    assert page.evaluate("window.__noReload") == 1
