"""Accessibility and a clean console on every page and state, in Chromium.

axe-core (tests/browser/vendor/axe.min.js, from the npm registry) runs in a context that bypasses the pages' CSP
— the CSP rightly refuses injected scripts — and must find zero violations. The console is checked separately
in ordinary contexts, where the CSP is enforced: no CSP report, no htmx error, no page error.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support import connect_sage, sign_in

from panel import clock
from panel.extensions import db
from panel.models import Company, SageToken, User
from panel.reminders.unsubscribe import unsubscribe_url

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DEMO_EMAIL, DEMO_PASSWORD = "sage.demo@example.com", "demo-sage-200"


# What the dark theme can change: panel.css's dark block sets colour variables only (tests/test_assets.py holds it
# to that), so in dark each state is audited for the rules colours decide, and fully in light.
COLOUR_RULES = ["color-contrast", "link-in-text-block"]


def axe_violations(page, rules: list[str] | None = None) -> list[str]:
    """axe-core's violations on the page as it is now (only ``rules`` when given), one line each."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    options = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = {"type": "rule", "values": rules}
    result = page.evaluate("options => axe.run(document, options)", options)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
            for v in result["violations"]]


class Audit:
    """Runs axe on each named state, light theme then dark, and collects what it finds, so one test reports every
    state at once. Pages must start in the light scheme (``browser.new_context(color_scheme="light")``)."""

    def __init__(self, page):
        self.page, self.found = page, {}

    def __call__(self, state: str, page=None) -> None:
        page = page or self.page
        page.wait_for_load_state()
        self._record(state, axe_violations(page))
        page.emulate_media(color_scheme="dark")
        try:
            self._record(f"{state} (dark)", axe_violations(page, COLOUR_RULES))
        finally:
            page.emulate_media(color_scheme="light")

    def _record(self, state: str, violations: list[str]) -> None:
        if violations:
            self.found[state] = violations

    def assert_clean(self) -> None:
        assert self.found == {}, "\n".join(f"{state}: {v}" for state, vs in self.found.items() for v in vs)


def _connect(app, **kwargs):
    with app.app_context():
        connect_sage(**kwargs)


def _set_expiry(app, delta: timedelta, needs_login: str | None = None):
    """Time passes: the token now expires ``delta`` from now (and needs Login Now, when a reason is given)."""
    with app.app_context():
        company = db.session.execute(db.select(Company).filter_by(name="Demo Ltd")).scalar_one()
        token = db.session.execute(db.select(SageToken).filter_by(company_id=company.id)).scalar_one()
        token.expires_at = clock.now() + delta
        if needs_login:
            token.state, token.state_reason = "needs_login", needs_login
        db.session.commit()


def test_admin_pages_and_states_have_no_axe_violations(browser, live_server):
    context = browser.new_context(bypass_csp=True, color_scheme="light")
    page = context.new_page()
    check = Audit(page)
    base = live_server.url
    with live_server.app.app_context():  # enough history for "Show more"
        for n in range(6):
            connect_sage()
        db.session.execute(db.delete(SageToken))
        db.session.commit()
    page.goto(f"{base}/login")
    check("sign-in")
    page.get_by_label("Email address").fill("admin@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    check("sign-in with an error")
    sign_in(page, base)
    check("not connected")
    days = page.get_by_label("Reminder days")
    days.fill("abc")
    days.press("Tab")
    expect(page.locator("#reminder-days-error")).to_be_visible()
    check("reminder days error")

    with page.expect_popup() as popup_info:
        page.locator("#token-widget").get_by_role("button", name="Login Now").click()
    popup = popup_info.value
    popup.wait_for_load_state()
    check("Sage ID sign-in", popup)
    popup.get_by_label("Email address").fill(DEMO_EMAIL)
    popup.get_by_label("Password").fill(DEMO_PASSWORD)
    popup.get_by_role("button", name="Sign in").click()
    expect(popup.get_by_role("button", name="Grant")).to_be_visible()
    check("Sage ID consent", popup)
    with popup.expect_event("close", timeout=15000):
        popup.get_by_role("button", name="Grant").click()
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Connected")
    page.locator("#sage-connection").get_by_role("button", name="Check connection").click()
    expect(page.get_by_test_id("sites")).to_be_visible()
    check("connected, connection checked")

    _set_expiry(live_server.app, timedelta(days=10))
    page.reload()
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Renew soon")
    check("renew soon")
    _set_expiry(live_server.app, timedelta(days=10), needs_login="Sage ID refused the refresh (invalid_grant).")
    page.reload()
    check("needs Login Now")
    _set_expiry(live_server.app, -timedelta(days=1))
    page.reload()
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Expired")
    check("expired")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#sage-connection").get_by_role("button", name="Disconnect").click()
    expect(page.get_by_test_id("connection-result")).to_be_visible()
    check("disconnected")
    page.get_by_role("button", name="Show more").click()
    expect(page.get_by_role("button", name="Show more")).to_have_count(0)
    check("activity, all rows")
    page.goto(f"{base}/settings/notifications")
    page.get_by_role("button", name="Send test email").click()
    check("my notifications, test email")
    page.goto(f"{base}/settings/sage/outbox")
    check("demo outbox")
    page.goto(f"{base}/settings/no-such-page")
    check("not found")
    context.close()
    check.assert_clean()


def test_user_pages_and_narrow_screen_have_no_axe_violations(browser, live_server):
    context = browser.new_context(bypass_csp=True, color_scheme="light", viewport={"width": 360, "height": 740})
    page = context.new_page()
    check = Audit(page)
    _connect(live_server.app, lifetime=timedelta(days=20))
    sign_in(page, live_server.url, email="ben@example.com")
    check("user, renew soon, 360 px")
    page.get_by_role("link", name="My notifications").first.click()
    page.get_by_role("switch", name="Email me Sage token reminders").click()
    check("user, my notifications, 360 px")
    with live_server.app.app_context():
        ben = db.session.execute(db.select(User).filter_by(email="ben@example.com")).scalar_one()
        link = unsubscribe_url(live_server.url, ben)
    page.context.clear_cookies()
    page.goto(link)
    expect(page.get_by_role("button", name="Unsubscribe")).to_be_visible()
    check("one-click unsubscribe page, 360 px")
    sign_in(page, live_server.url)
    check("admin, 360 px")
    # The audit can fail: a field without a label is reported.
    page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<input id=axe-probe>')")
    assert any(v.startswith("label ") for v in axe_violations(page))
    # …and so can the dark pass: text readable on the light background but not on the dark one.
    page.evaluate("document.getElementById('axe-probe').remove()")
    page.evaluate("""document.querySelector('main').insertAdjacentHTML('beforeend',
        '<p id=dark-probe style="color: #555; background: var(--bg)">dark probe</p>')""")
    probe = Audit(page)
    probe("probe")
    assert list(probe.found) == ["probe (dark)"] and probe.found["probe (dark)"][0].startswith("color-contrast ")
    context.close()
    check.assert_clean()


def watch_console(page) -> list[str]:
    """Every console error or warning and uncaught page error (CSP reports, htmx errors) as text."""
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"{msg.type}: {msg.text}") if msg.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    return problems


def test_console_stays_clean_with_the_csp_enforced(page, live_server):
    """Login Now (both windows), Enter in the days field (change and submit at once), switches, search, check,
    disconnect, My notifications: nothing in the console, with the CSP enforced as served."""
    problems = watch_console(page)
    sign_in(page, live_server.url)
    with page.expect_popup() as popup_info:
        page.locator("#token-widget").get_by_role("button", name="Login Now").click()
    popup = popup_info.value
    problems += watch_console(popup)
    popup.get_by_label("Email address").fill(DEMO_EMAIL)
    popup.get_by_label("Password").fill(DEMO_PASSWORD)
    popup.get_by_role("button", name="Sign in").click()
    with popup.expect_event("close", timeout=15000):
        popup.get_by_role("button", name="Grant").click()
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Connected")
    assert "script-src 'self'" in page.evaluate(
        "fetch(location.href).then(r => r.headers.get('content-security-policy'))")
    days = page.get_by_label("Reminder days")
    requests = []
    page.on("request", lambda r: requests.append(r.url) if r.url.endswith("/reminders/days") else None)
    days.fill("21")
    days.press("Enter")
    expect(page.locator("#field-reminder-days [role=status]")).to_have_text("Saved")
    page.wait_for_timeout(300)
    assert len(requests) == 1, requests  # one save, none aborted
    page.get_by_label("Hour", exact=True).select_option("9")
    expect(page.locator("#field-reminder-hour [role=status]")).to_have_text("Saved")
    page.get_by_role("switch", name="Email reminders to Ben Hughes").click()
    page.get_by_role("searchbox", name="Search people").fill("chlo")
    expect(page.get_by_test_id("recipient-row")).to_have_count(1)
    page.locator("#sage-connection").get_by_role("button", name="Check connection").click()
    expect(page.get_by_test_id("check-status")).to_contain_text("Connection")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#sage-connection").get_by_role("button", name="Disconnect").click()
    expect(page.get_by_test_id("connection-result")).to_be_visible()
    page.evaluate("htmx.trigger('#token-widget', 'panel-refresh')")
    page.get_by_role("link", name="My notifications").first.click()
    page.get_by_role("switch", name="Email me Sage token reminders").click()
    expect(page.get_by_test_id("my-switch-state")).to_contain_text("Off:")
    page.wait_for_timeout(300)
    assert problems == []


def test_dark_theme_follows_the_system_setting(browser, live_server):
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme)
        page = context.new_page()
        sign_in(page, live_server.url)
        colours[scheme] = page.evaluate("""() => {
            const rgb = (el, prop) => getComputedStyle(el)[prop].match(/\\d+/g).slice(0, 3).map(Number);
            const card = document.querySelector('#token-widget');
            return {page: rgb(document.documentElement, 'backgroundColor'), card: rgb(card, 'backgroundColor'),
                    text: rgb(card, 'color'), input: rgb(document.querySelector('#reminder-days'), 'backgroundColor')};
        }""")
        context.close()
    light, dark = colours["light"], colours["dark"]
    assert sum(light["page"]) > 600 and sum(light["text"]) < 150
    assert sum(dark["page"]) < 120 and sum(dark["card"]) < 150 and sum(dark["input"]) < 150
    assert sum(dark["text"]) > 600


def test_narrow_screen_keeps_emails_whole_and_activity_short(browser, live_server):
    """At 360 px: no sideways scrolling, email addresses wrap only between their parts, five activity rows."""
    long_email = "maximilian.featherstonehaugh@subsidiary-of-demo.example.co.uk"
    with live_server.app.app_context():
        company = db.session.execute(db.select(Company).filter_by(name="Demo Ltd")).scalar_one()
        db.session.add(User(company=company, email=long_email, name="Max Featherstonehaugh",
                            password_hash=db.session.execute(db.select(User.password_hash)).scalars().first()))
        db.session.commit()
        for n in range(12):
            connect_sage()  # each Login Now adds an activity row
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    sign_in(page, live_server.url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    expect(page.get_by_test_id("activity").locator("li")).to_have_count(5)
    # Where does each visible email wrap? Each line must start at the address's start, "@" or ".".
    breaks = page.evaluate("""() => [...document.querySelectorAll('.recipient-email-sub')]
        .filter(el => el.offsetParent !== null).map(el => {
          const text = el.textContent, range = document.createRange(), node = el, starts = [];
          let lastTop = null, offset = 0;
          const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
          for (let t = walker.nextNode(); t; t = walker.nextNode()) {
            for (let i = 0; i < t.length; i++) {
              range.setStart(t, i); range.setEnd(t, i + 1);
              const top = Math.round(range.getBoundingClientRect().top);
              if (lastTop !== null && top > lastTop + 2) starts.push(text[offset + i]);
              lastTop = top;
            }
            offset += t.length;
          }
          return [text, starts];
        })""")
    assert len(breaks) == 4, breaks
    for text, starts in breaks:
        assert all(ch in "@." for ch in starts), f"{text} wraps mid-word: {starts}"
    assert dict(breaks)[long_email], "the long address should need to wrap at 360 px"
    assert all(not starts for text, starts in breaks if text != long_email), breaks  # short ones: one line
    context.close()
