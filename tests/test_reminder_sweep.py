"""The daily reminder sweep against a real SMTP server (aiosmtpd): at most once a day, never missed."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from support import connect_sage, run_together
from sweep_fixtures import demo, mail_app, smtp  # noqa: F401 (fixtures)

from panel import clock
from panel.extensions import db
from panel.models import Company, DeliveryStatus, ReminderDelivery, User
from panel.reminders import sweep

LONDON = ZoneInfo("Europe/London")


def connect(company: Company, at: datetime, lifetime: timedelta) -> None:
    """A successful Login Now at ``at`` whose token lasts ``lifetime``."""
    clock.freeze(at)
    connect_sage(company.name, at=at, lifetime=lifetime)


def sweep_at(at: datetime) -> dict:
    clock.freeze(at)
    result = sweep.run(at, inline=True)
    db.session.remove()
    return result


def local(y, m, d, h=0, mi=0, tz=LONDON) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=tz).astimezone(timezone.utc)


def sent_days(smtp, tz=LONDON) -> Counter:
    """(recipient, local date of the Date header) -> count."""
    return Counter((m["To"].addresses[0].addr_spec, m["Date"].datetime.astimezone(tz).date()) for m in smtp.handler.messages)


def test_forty_days_around_expiry_with_a_renewal_in_the_middle(mail_app, smtp):
    company = demo()
    expiry = local(2027, 2, 10, 14, 0)
    connect(company, expiry - timedelta(days=90), timedelta(days=90))
    start, renewal = expiry - timedelta(days=30), expiry - timedelta(days=10) + timedelta(hours=-2)  # 12:00 local
    t = start
    while t < start + timedelta(days=40):
        if renewal <= t < renewal + timedelta(hours=1):
            connect(demo(), renewal, timedelta(days=90))
        sweep_at(t)
        t += timedelta(hours=1)
    days = sent_days(smtp)
    assert max(days.values()) == 1, "someone got two reminders on one day"
    recipients = {"admin@example.com", "chloe@example.com"}  # opted in; ben@ is not
    assert {who for who, _ in days} == recipients
    # The window opened at 14:00 on 13 Jan, after that day's 08:00 send hour: the first reminder is the next
    # send hour inside it (08:00 on 14 Jan, "27 days"), like every other (issue 12: not at the window's 14:00).
    window_day, last_day = (expiry - timedelta(days=28)).astimezone(LONDON).date(), renewal.astimezone(LONDON).date()
    first_day = window_day + timedelta(days=1)
    expected_days = {first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)}
    for who in recipients:
        assert {d for w, d in days if w == who} == expected_days
    first = min(smtp.handler.messages, key=lambda m: m["Date"].datetime)
    assert first["Subject"] == "Sage token expires in 27 days — renew now"
    assert {m["Date"].datetime.astimezone(LONDON).hour for m in smtp.handler.messages} == {8}
    assert len(smtp.handler.messages) == 2 * len(expected_days)


def test_reminders_continue_after_expiry_reworded(mail_app, smtp):
    company = demo()
    expiry = local(2027, 2, 10, 7, 0)
    connect(company, expiry - timedelta(days=90), timedelta(days=90))
    for day in range(-1, 4):
        sweep_at(local(2027, 2, 10, 9, 0) + timedelta(days=day))
    subjects = [m["Subject"] for m in smtp.handler.messages if m["To"].addresses[0].addr_spec == "admin@example.com"]
    assert subjects == ["Sage token expires in 22 hours — renew now",
                        "Sage token expired 2 hours ago — Sage sync has stopped",
                        "Sage token expired 1 day ago — Sage sync has stopped",
                        "Sage token expired 2 days ago — Sage sync has stopped",
                        "Sage token expired 3 days ago — Sage sync has stopped"]


def test_nothing_before_the_send_hour_and_catch_up_later_that_day(mail_app, smtp):
    company = demo()
    connect(company, local(2026, 11, 1, 12), timedelta(days=30))  # window open all of November
    assert sweep_at(local(2026, 11, 20, 7, 59))["claimed"] == 0
    # Workers were down at 08:00; the 15:00 sweep sends what was missed.
    assert sweep_at(local(2026, 11, 20, 15, 0))["sent"] == 2
    assert sweep_at(local(2026, 11, 20, 23, 59))["claimed"] == 0
    # The next day's 08:00 is only 17 hours after the catch-up: it waits until 20 hours have passed (11:00).
    assert sweep_at(local(2026, 11, 21, 8, 0))["claimed"] == 0
    assert sweep_at(local(2026, 11, 21, 10, 59))["claimed"] == 0
    assert sweep_at(local(2026, 11, 21, 11, 0))["sent"] == 2
    assert sweep_at(local(2026, 11, 22, 8, 0))["sent"] == 2  # 21 hours later: back at the send hour


def test_two_sweeps_at_once_send_each_reminder_once(mail_app, smtp):
    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    app = mail_app
    at = local(2026, 11, 20, 9, 0)
    clock.freeze(at)
    results, errors = run_together(app, 4, lambda: sweep.run(at, inline=True))
    assert not errors, errors
    assert sorted(smtp.handler.to()) == ["admin@example.com", "chloe@example.com"]
    assert sum(r["sent"] for r in results) == 2


def test_renewal_between_claim_and_send_stops_the_reminder(mail_app, smtp):
    company = demo()
    connect(company, local(2026, 11, 1, 12), timedelta(days=30))
    at = local(2026, 11, 20, 9, 0)
    claimed = sweep.find_and_claim(at)
    assert claimed.claimed == 2
    connect(demo(), at + timedelta(minutes=1), timedelta(days=90))  # Login Now before the batch runs
    from panel.reminders.sweep import send_claimed

    clock.freeze(at + timedelta(minutes=2))
    done = send_claimed(claimed.batches[0])
    assert (done.sent, done.skipped) == (0, 2) and smtp.handler.messages == []
    reasons = {r.reason for r in ReminderDelivery.query.all()}
    assert reasons == {"the token was renewed"}


def test_switch_off_and_inactive_are_checked_at_send_time(mail_app, smtp):
    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    at = local(2026, 11, 20, 9, 0)
    clock.freeze(at)
    claimed = sweep.find_and_claim(at)
    User.query.filter_by(email="chloe@example.com").one().notify_sage_token = False
    db.session.commit()
    from panel.reminders.sweep import send_claimed

    done = send_claimed(claimed.batches[0])
    assert (done.sent, done.skipped) == (1, 1) and smtp.handler.to() == ["admin@example.com"]
    # An inactive user is never emailed, whatever the switch says.
    User.query.filter_by(email="admin@example.com").one().active = False
    db.session.commit()
    assert sweep_at(local(2026, 11, 21, 9, 0))["claimed"] == 0


def test_one_smtp_connection_per_batch(mail_app, smtp):
    company = demo()
    for i in range(5):
        db.session.add(User(company=company, email=f"extra{i}@example.com", name=f"Extra {i}", password_hash="x",
                            notify_sage_token=True))
    db.session.commit()
    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    assert sweep_at(local(2026, 11, 20, 9, 0))["sent"] == 7
    assert smtp.handler.connections == 1


def test_smtp_421_then_recovering(mail_app, smtp):
    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    smtp.handler.fail_next = ["421 4.3.2 Service not available, try later"] * 1
    first = sweep_at(local(2026, 11, 20, 9, 0))
    assert first["sent"] == 0 and first["retry"] == 2  # the connection is dropped after a 421
    assert {r.status for r in ReminderDelivery.query.all()} == {"claimed"}
    # The retry (RQ Retry, or the next sweep once the lease is over) sends them, once each.
    from panel.reminders.sweep import send_claimed

    clock.freeze(local(2026, 11, 20, 9, 1))
    ids = [r.id for r in ReminderDelivery.query.all()]
    assert send_claimed(ids).sent == 2
    assert sorted(smtp.handler.to()) == ["admin@example.com", "chloe@example.com"]
    assert sweep_at(local(2026, 11, 20, 9, 30))["claimed"] == 0


def test_550_for_one_recipient_is_recorded_and_the_rest_go(mail_app, smtp):
    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    smtp.handler.refuse["admin@example.com"] = "550 5.1.1 Mailbox unavailable"
    result = sweep_at(local(2026, 11, 20, 9, 0))
    assert (result["sent"], result["failed"], result["retry"]) == (1, 1, 0)
    assert smtp.handler.to() == ["chloe@example.com"]
    failed = ReminderDelivery.query.filter_by(status=DeliveryStatus.FAILED.value).one()
    assert failed.reason.startswith("550") and "Mailbox unavailable" in failed.reason
    # Not retried, not re-claimed later that day.
    assert sweep_at(local(2026, 11, 20, 18, 0))["claimed"] == 0 and len(smtp.handler.messages) == 1
    # The Sage page shows it.
    from panel.reminders.ledger import last_reminder

    last = last_reminder(demo().id)
    assert (last.sent, last.failed) == (1, 1) and "Mailbox unavailable" in last.why


def test_clock_change_day_in_london(mail_app, smtp):
    company = demo()
    company.reminder_hour = 1  # 01:00 does not exist on 28 March 2027 (clocks go 01:00 GMT -> 02:00 BST)
    db.session.commit()
    connect(demo(), local(2027, 3, 1, 12), timedelta(days=40))
    t = local(2027, 3, 27, 0, 0)
    while t < local(2027, 3, 30, 0, 0):
        sweep_at(t)
        t += timedelta(minutes=15)
    days = sent_days(smtp)
    assert max(days.values()) == 1
    assert {d for _, d in days} == {datetime(2027, 3, d).date() for d in (27, 28, 29)}
    spring = [m["Date"].datetime for m in smtp.handler.messages if m["Date"].datetime.astimezone(LONDON).day == 28]
    assert all(d.astimezone(timezone.utc).hour == 1 for d in spring)  # 02:00 BST, the first valid instant


def test_company_in_sydney(mail_app, smtp):
    sydney = ZoneInfo("Australia/Sydney")
    company = demo()
    company.timezone = "Australia/Sydney"
    db.session.commit()
    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    assert sweep_at(local(2026, 11, 20, 7, 59, tz=sydney))["claimed"] == 0
    assert sweep_at(local(2026, 11, 20, 8, 0, tz=sydney))["sent"] == 2   # 21:00 UTC on the 19th
    rows = ReminderDelivery.query.all()
    assert {r.local_date for r in rows} == {datetime(2026, 11, 20).date()}
    assert sweep_at(local(2026, 11, 20, 23, 0, tz=sydney))["claimed"] == 0


def test_disconnected_and_not_yet_due_companies_are_not_read(mail_app, smtp):
    connect(demo(), local(2026, 11, 1, 12), timedelta(days=90))  # window opens in December
    assert sweep_at(local(2026, 11, 20, 9, 0)) == {"companies_due": 0, "claimed": 0, "recovered": 0, "batches": 0,
                                                   "sent": 0, "failed": 0, "skipped": 0, "retry": 0, "uncertain": 0}


def test_changing_reminder_days_moves_the_window(mail_app, smtp):
    from panel.reminders import settings as reminder_settings

    connect(demo(), local(2026, 11, 1, 12), timedelta(days=40))  # expires 11 Dec; 28-day window opens 13 Nov
    company_id = demo().id
    def admin():
        return User.query.filter_by(email="admin@example.com").one()

    reminder_settings.save(company_id, reminder_settings.SETTINGS["days"], 7, admin())
    assert sweep_at(local(2026, 11, 20, 9, 0))["claimed"] == 0  # window now opens 4 Dec
    reminder_settings.save(company_id, reminder_settings.SETTINGS["days"], 28, admin())
    assert sweep_at(local(2026, 11, 20, 10, 0))["sent"] == 2


def test_send_reminders_command(mail_app, smtp):
    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    clock.freeze(local(2026, 11, 20, 9, 0))
    out = mail_app.test_cli_runner().invoke(args=["send-reminders"])
    assert out.exit_code == 0, out.output
    assert "2 sent" in out.output
    assert len(smtp.handler.messages) == 2


def test_sweep_through_the_queue_sets_rq_retry(mail_app, smtp):
    from panel.jobs import get_queue

    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    clock.freeze(local(2026, 11, 20, 9, 0))
    result = sweep.run(clock.now())
    assert (result["claimed"], result["batches"]) == (2, 1)
    job = get_queue(app=mail_app).jobs[0]
    assert job.func_name == "panel.reminders.schedule.send_batch"
    assert job.retries_left == len(sweep.RETRY_INTERVALS) and job.retry_intervals == sweep.RETRY_INTERVALS
    assert smtp.handler.messages == []  # nothing sent by the sweep itself


def test_sage_page_shows_last_and_next_reminder(mail_app, smtp):
    from support import Session

    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    smtp.handler.refuse["chloe@example.com"] = "550 5.1.1 No such user"
    sweep_at(local(2026, 11, 20, 9, 0))
    clock.freeze(local(2026, 11, 20, 10, 0))
    page = Session(mail_app.test_client(), "admin@example.com").client.get("/settings/sage").text
    assert "Last reminder: Fri 20 Nov 2026, 09:00 GMT, sent to 1 (1 failed: 550 5.1.1 No such user)" in page
    assert "Next reminder: Sat 21 Nov 2026, 08:00 GMT, to 2 recipients" in page


@pytest.mark.parametrize("tz_name, hour, expiry_wall, page_says", [
    # Issue 12: New York, "Send at 09:00": the window opens at 22:29 EST (the expiry's wall time, 28 days before).
    ("America/New_York", 9, datetime(2027, 2, 26, 22, 29), "Next reminder: Sat 30 Jan 2027, 09:00 EST"),
    # Sydney, send 09:00, window opening at 15:00 AEDT.
    ("Australia/Sydney", 9, datetime(2027, 2, 26, 15, 0), "Next reminder: Sat 30 Jan 2027, 09:00 AEDT"),
], ids=["new york", "sydney"])
def test_first_reminder_of_a_window_goes_at_the_send_hour(mail_app, smtp, tz_name, hour, expiry_wall, page_says):
    from support import Session

    zone = ZoneInfo(tz_name)
    company = demo()
    company.timezone, company.reminder_hour = tz_name, hour
    db.session.commit()
    expiry = expiry_wall.replace(tzinfo=zone).astimezone(timezone.utc)
    connect(demo(), expiry - timedelta(days=90), timedelta(days=90))
    opens = (expiry_wall - timedelta(days=28)).replace(tzinfo=zone).astimezone(timezone.utc)
    clock.freeze(opens + timedelta(minutes=1))  # the window has just opened; today's 09:00 is long past
    page = Session(mail_app.test_client(), "admin@example.com").client.get("/settings/sage").text
    assert page_says + ", to 2 recipients" in page
    t = opens.replace(minute=0) - timedelta(hours=1)  # a sweep every hour, on the hour
    while t < opens + timedelta(hours=43):
        sweep_at(t)
        t += timedelta(hours=1)
    times = sorted(m["Date"].datetime.astimezone(zone) for m in smtp.handler.messages)
    assert [(d.day, d.hour, d.minute) for d in times] == [(30, 9, 0), (30, 9, 0), (31, 9, 0), (31, 9, 0)]


def test_next_reminder_line_says_when_it_is_due_now_or_held_by_the_20_hours(app):
    """The widget agrees with the plan when the send hour is not what decides (mail goes to the demo outbox here)."""
    from support import Session

    app.config["PANEL_IDLE_TIMEOUT_MINUTES"] = 600  # one signed-in page across the night
    with app.app_context():
        company = demo()
        company.reminder_hour = 23
        db.session.commit()
        connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    clock.freeze(local(2026, 11, 20, 23, 5))  # past today's 23:00, no sweep yet
    http = Session(app.test_client(), "admin@example.com").client
    assert ("Next reminder: due now (today's 23:00 has passed), to 2 recipients — the next sweep sends it within "
            "15 minutes") in http.get("/settings/sage").text
    with app.app_context():
        assert sweep_at(local(2026, 11, 20, 23, 10))["sent"] == 2
        demo().reminder_hour = 0
        db.session.commit()
    clock.freeze(local(2026, 11, 21, 0, 30))
    assert ("Next reminder: Sat 21 Nov 2026, 19:10 GMT, to 2 recipients (20 hours after the last one: reminders are "
            "never closer than that)") in http.get("/settings/sage").text


def test_a_company_with_5000_recipients_is_claimed_in_one_sweep(mail_app, smtp):
    company = demo()
    db.session.execute(User.__table__.insert(), [
        {"company_id": company.id, "email": f"bulk{i}@example.com", "name": f"Bulk {i}", "password_hash": "x",
         "role": "user", "active": True, "notify_sage_token": True, "created_at": clock.now()}
        for i in range(5000)])
    db.session.commit()
    connect(demo(), local(2026, 11, 1, 12), timedelta(days=30))
    found = sweep.find_and_claim(local(2026, 11, 20, 9, 0))
    assert found.claimed == 5002 and len(found.batches) == 101  # 50 per batch
    assert ReminderDelivery.query.count() == 5002
    again = sweep.find_and_claim(local(2026, 11, 20, 9, 15))
    assert again.claimed == 0
