"""The screen follows the state, by keyboard, in Chromium: the connection card, announcements of the widget's
state, focus after Grant, Disconnect and "Show more", busy text while checking, the activity list."""
from __future__ import annotations

from datetime import timedelta

from oauth_flow import grant_redirect, panel_sign_in
from playwright.sync_api import expect
from support import connect_sage, sign_in

from panel import audit, clock
from panel.audit import Action
from panel.extensions import db
from panel.models import Company, SageToken
from panel.redis_conn import get_redis

DEMO_EMAIL, DEMO_PASSWORD = "sage.demo@example.com", "demo-sage-200"
# Counts every change of the announcer's text, so a test can tell "said once" from "said on every poll".
COUNT_ANNOUNCEMENTS = """() => { window.__said = []; const a = document.getElementById('token-announcer');
  new MutationObserver(() => window.__said.push(a.textContent)).observe(a, {childList: true, characterData: true,
  subtree: true}); }"""


def card(page):
    return page.locator("#sage-connection")


def test_not_connected_card_offers_only_login_now(page, live_server):
    sign_in(page, live_server.url)
    expect(card(page).get_by_role("button", name="Login Now")).to_be_visible()
    expect(card(page).get_by_role("button", name="Check connection")).to_have_count(0)
    expect(card(page).get_by_role("button", name="Disconnect")).to_have_count(0)
    expect(page.locator("#token-widget").get_by_role("button", name="Login Now")).to_be_visible()


def test_login_now_by_keyboard_then_check_connection_shows_busy_text(page, live_server):
    sign_in(page, live_server.url)
    page.evaluate(COUNT_ANNOUNCEMENTS)
    login_now = page.locator("#token-widget").get_by_role("button", name="Login Now")
    login_now.focus()
    with page.expect_popup() as popup_info:
        page.keyboard.press("Space")  # a real button: Space works
    popup = popup_info.value
    popup.get_by_label("Email address").fill(DEMO_EMAIL)
    popup.get_by_label("Password").fill(DEMO_PASSWORD)
    popup.get_by_role("button", name="Sign in").click()
    with popup.expect_event("close", timeout=15000):
        popup.get_by_role("button", name="Grant").click()

    widget = page.locator("#token-widget")
    expect(widget.get_by_test_id("token-state")).to_have_text("Connected")
    expect(widget).to_be_focused()  # not <body>: the button that opened the window was replaced
    expect(page.locator("#token-announcer")).to_have_text("Sage token: Connected, 89 days, 23 hours left.")
    expect(widget).not_to_contain_text("Generation")

    # Check connection, by keyboard, with Sage slow to answer: the button and the status say it is checking.
    held = []
    page.route("**/settings/sage/check", lambda route: held.append(route))
    check = card(page).get_by_role("button", name="Check connection")
    check.focus()
    page.keyboard.press("Enter")
    expect(card(page).get_by_role("button", name="Checking…")).to_be_visible()
    expect(card(page).get_by_test_id("check-status")).to_have_text("Checking the connection…")
    expect(card(page).get_by_test_id("check-status")).to_have_attribute("aria-live", "polite")
    page.keyboard.press("Enter")  # a second press while waiting sends nothing more
    page.wait_for_timeout(200)
    assert len(held) == 1
    held[0].continue_()
    expect(card(page).get_by_test_id("check-status")).to_have_text(
        "Connection OK: this token reaches 2 Sage 200 sites.")
    expect(card(page).get_by_test_id("sites").locator("tbody tr")).to_have_count(2)
    expect(card(page).get_by_role("button", name="Check connection")).to_be_focused()
    assert page.evaluate("window.__said") == ["Sage token: Connected, 89 days, 23 hours left."]


def test_disconnect_by_keyboard_says_so_inline_and_moves_focus(page, live_server):
    with live_server.app.app_context():
        connect_sage()
    sign_in(page, live_server.url)
    expect(card(page).get_by_role("button", name="Login Now")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    card(page).get_by_role("button", name="Disconnect").focus()
    page.keyboard.press("Enter")

    result = card(page).get_by_test_id("connection-result")
    expect(result).to_have_text("Disconnected. The stored token was removed, so Sage sync has stopped until "
                                "someone clicks Login Now.")
    expect(result).to_have_attribute("role", "status")
    expect(result).to_be_focused()
    expect(card(page).get_by_role("button", name="Disconnect")).to_have_count(0)
    expect(card(page).get_by_role("button", name="Check connection")).to_have_count(0)
    expect(card(page).get_by_role("button", name="Login Now")).to_be_visible()
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Not connected")
    expect(page.locator("#token-announcer")).to_have_text("Sage token: Not connected.")
    expect(page.locator("#audit-list")).to_contain_text("Disconnected Sage")
    page.keyboard.press("Tab")  # the next stop is the card's Login Now
    expect(card(page).get_by_role("button", name="Login Now")).to_be_focused()


def test_widget_state_changes_are_announced_once(page, live_server):
    app = live_server.app
    with app.app_context():
        connect_sage(lifetime=timedelta(days=40))  # outside the 28-day reminder window: Connected
    sign_in(page, live_server.url)
    page.evaluate(COUNT_ANNOUNCEMENTS)
    refresh = "htmx.trigger('#token-widget', 'panel-refresh')"

    def move_expiry(delta: timedelta) -> None:
        with app.app_context():
            company = db.session.execute(db.select(Company).filter_by(name="Demo Ltd")).scalar_one()
            token = db.session.execute(db.select(SageToken).filter_by(company_id=company.id)).scalar_one()
            token.expires_at = clock.now() + delta
            db.session.commit()

    page.evaluate(refresh)  # the same state: nothing to say
    expect(page.locator("#token-widget")).to_have_attribute("data-state", "connected")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__said") == []

    move_expiry(timedelta(days=20, minutes=30))  # time passes: inside the window
    page.evaluate(refresh)
    announcer = page.locator("#token-announcer")
    expect(announcer).to_have_text("Sage token: Renew soon, 20 days left.")
    expect(announcer).to_have_attribute("aria-live", "polite")
    page.evaluate(refresh)
    page.evaluate(refresh)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__said") == ["Sage token: Renew soon, 20 days left."]

    move_expiry(-timedelta(hours=2))
    page.evaluate(refresh)
    expect(announcer).to_have_text("Sage token: Expired.")
    assert len(page.evaluate("window.__said")) == 2


def test_activity_shows_five_then_show_more_moves_focus(page, live_server):
    with live_server.app.app_context():
        company = db.session.execute(db.select(Company).filter_by(name="Demo Ltd")).scalar_one()
        for n in range(27):
            audit.record(company.id, Action.SETTING_CHANGED, f"Change {n}", actor_name="Alice Admin")
        db.session.commit()
    sign_in(page, live_server.url)
    rows = page.get_by_test_id("activity").locator("li")
    expect(rows).to_have_count(5)
    more = page.get_by_role("button", name="Show more")
    more.focus()
    page.keyboard.press("Enter")
    expect(rows).to_have_count(25)  # 20 more
    expect(rows.nth(5)).to_be_focused()
    expect(rows.nth(5)).to_contain_text("Change 21")
    page.get_by_role("button", name="Show more").click()
    expect(rows).to_have_count(27)
    expect(rows.nth(25)).to_be_focused()
    expect(page.get_by_role("button", name="Show more")).to_have_count(0)
    page.evaluate("htmx.trigger(document.body, 'sage-token-changed')")  # a change elsewhere keeps all 27 shown
    page.wait_for_timeout(300)
    expect(rows).to_have_count(27)


def test_check_connection_during_another_refresh_says_so_and_checks_again_by_itself(page, live_server):
    """Issue 16: while another request holds the refresh lock, the card says a refresh is in progress and asks
    again by itself (htmx, with the page's CSRF header) until the connection is checked."""
    http = panel_sign_in(live_server.url)
    http.get(grant_redirect(http, live_server.url))  # a real demo token (the refresh must really work)
    app = live_server.app
    with app.app_context():
        db.session.execute(db.update(SageToken).values(access_expires_at=clock.now() - timedelta(minutes=1)))
        db.session.commit()
        company_id = db.session.execute(db.select(SageToken.company_id)).scalar_one()
    other = get_redis(app).lock(f"sage:refresh-lock:{company_id}", timeout=30)
    assert other.acquire()  # another request (or host) is refreshing
    sign_in(page, live_server.url)
    card(page).get_by_role("button", name="Check connection").click()
    status = card(page).get_by_test_id("check-status")
    expect(status).to_have_text("A refresh of the Sage token is in progress (started by another request). "
                                "Checking again in 2 seconds…")
    other.release()  # that refresh is over (here it gave up): the card's next check refreshes and checks
    expect(status).to_have_text("Connection OK: this token reaches 2 Sage 200 sites.", timeout=10_000)
    expect(card(page).get_by_role("button", name="Check connection")).to_be_enabled()
