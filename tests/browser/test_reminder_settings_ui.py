"""Reminder settings, recipient switches and My notifications in Chromium: inline saving with htmx, no reloads."""
from __future__ import annotations

import re

from playwright.sync_api import expect
from support import sign_in


def watch_console(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def test_reminder_days_bad_value_then_good_value(page, live_server):
    errors = watch_console(page)
    sign_in(page, live_server.url)
    days = page.get_by_role("textbox", name="Reminder days")
    expect(days).to_have_value("28")

    days.fill("1e3")
    days.press("Tab")  # "change": saves as the person leaves the field
    expect(page.locator("#reminder-days-error")).to_contain_text("whole number from 1 to 365")
    days = page.get_by_role("textbox", name="Reminder days")
    expect(days).to_have_value("1e3")  # the person's text stays there to correct
    expect(days).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#field-reminder-days [role=status]")).to_have_text("")

    widget_refreshes = []
    page.on("request", lambda r: widget_refreshes.append(r.url) if r.url.endswith("/settings/sage/widget") else None)
    days.fill("14")
    days.press("Enter")  # Enter saves too
    expect(page.locator("#field-reminder-days [role=status]")).to_have_text("Saved")
    expect(page.locator("#reminder-days-error")).to_have_count(0)
    expect(page.get_by_role("textbox", name="Reminder days")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#audit-list")).to_contain_text("Reminder days: 28 → 14")  # refreshed by the event
    assert widget_refreshes, "the token widget was not refreshed after saving"

    page.reload()
    expect(page.get_by_role("textbox", name="Reminder days")).to_have_value("14")
    assert not [e for e in errors if "Content Security Policy" in e or "evalDisallowed" in e], errors


def test_send_at_hour_and_timezone(page, live_server):
    sign_in(page, live_server.url)
    page.get_by_label("Hour", exact=True).select_option("23")
    expect(page.locator("#field-reminder-hour [role=status]")).to_have_text("Saved")
    tz = page.get_by_label("Timezone")
    tz.fill("Mars/Olympus")
    tz.press("Enter")
    expect(page.locator("#reminder-timezone-error")).to_be_visible()
    expect(page.get_by_label("Timezone")).to_have_value("Mars/Olympus")
    page.get_by_label("Timezone").fill("Asia/Tokyo")
    page.get_by_label("Timezone").press("Enter")
    expect(page.locator("#field-reminder-timezone [role=status]")).to_have_text("Saved")
    page.reload()
    expect(page.get_by_label("Hour", exact=True)).to_have_value("23")
    expect(page.get_by_label("Timezone")).to_have_value("Asia/Tokyo")


def test_recipient_switch_survives_reload(page, live_server):
    sign_in(page, live_server.url)
    count = page.get_by_test_id("recipient-count")
    expect(count).to_have_text("2 people will be emailed.")
    ben = page.get_by_role("switch", name="Email reminders to Ben Hughes")
    expect(ben).to_have_attribute("aria-checked", "false")
    ben.click()
    expect(page.get_by_role("switch", name="Email reminders to Ben Hughes")).to_have_attribute("aria-checked", "true")
    expect(count).to_have_text("3 people will be emailed.")

    # Keyboard: Space on the focused switch flips it, and focus stays on the (new) switch.
    chloe = page.get_by_role("switch", name="Email reminders to Chloe Patel")
    chloe.focus()
    page.keyboard.press("Space")
    expect(page.get_by_role("switch", name="Email reminders to Chloe Patel")).to_have_attribute("aria-checked", "false")
    expect(page.get_by_role("switch", name="Email reminders to Chloe Patel")).to_be_focused()
    expect(count).to_have_text("2 people will be emailed.")

    page.reload()
    expect(page.get_by_role("switch", name="Email reminders to Ben Hughes")).to_have_attribute("aria-checked", "true")
    expect(page.get_by_role("switch", name="Email reminders to Chloe Patel")).to_have_attribute("aria-checked", "false")


def test_recipient_search(page, live_server):
    sign_in(page, live_server.url)
    page.get_by_role("searchbox", name="Search people").fill("chlo")
    expect(page.get_by_test_id("recipient-row")).to_have_count(1)
    expect(page.get_by_test_id("recipient-row")).to_contain_text("chloe@example.com")
    page.get_by_role("searchbox", name="Search people").fill("")
    expect(page.get_by_test_id("recipient-row")).to_have_count(3)


def test_my_notifications_switch(page, live_server):
    sign_in(page, live_server.url, email="ben@example.com")
    expect(page.get_by_role("textbox", name="Reminder days")).to_have_count(0)  # read-only for users
    page.get_by_role("link", name="My notifications").first.click()
    expect(page).to_have_url(re.compile(r"/settings/notifications$"))
    expect(page.get_by_role("link", name="My notifications").first).to_have_attribute("aria-current", "page")
    mine = page.get_by_role("switch", name="Email me Sage token reminders")
    expect(mine).to_have_attribute("aria-checked", "false")
    mine.click()
    expect(page.get_by_role("switch", name="Email me Sage token reminders")).to_have_attribute("aria-checked", "true")
    expect(page.get_by_test_id("my-switch-state")).to_contain_text("On:")
    page.reload()
    expect(page.get_by_role("switch", name="Email me Sage token reminders")).to_have_attribute("aria-checked", "true")
