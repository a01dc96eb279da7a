"""Sign-in through Chromium."""
from __future__ import annotations

from playwright.sync_api import expect
from support import sign_in


def test_sign_in_through_the_browser_reaches_sage_settings(page, live_server):
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{live_server.url}/settings/sage")
    expect(page).to_have_url(f"{live_server.url}/login?next=/settings/sage")
    page.get_by_label("Email address").fill("admin@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Email or password is incorrect.")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/settings/sage")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sage")
    expect(page.get_by_role("link", name="Sage")).to_have_attribute("aria-current", "page")
    assert page.evaluate("typeof htmx") == "object" and page.evaluate("htmx.version").startswith("2.0.")
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_sign_out(page, live_server):
    sign_in(page, live_server.url)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/login")
    expect(page.get_by_text("You have been signed out.")).to_be_visible()


def test_narrow_screen_is_usable(browser, live_server):
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    sign_in(page, live_server.url)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"page scrolls sideways at 360 px ({width}px wide)"
    context.close()
