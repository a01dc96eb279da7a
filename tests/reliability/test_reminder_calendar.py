"""Issue 10 items 2 and 3, on frozen clocks with a real SMTP server: at most one reminder per person per company
within any 20 hours, whatever happens to the timezone, the send hour or the token generation; no local day skipped
because the timezone moved (Kiritimati <-> Pago_Pago, 25 hours apart) or the clocks changed; a renewal inside a
window longer than the token's lifetime never sends a second reminder the same day."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from oauth_flow import grant_redirect, panel_sign_in
from support import connect_sage, start_live
from sweep_fixtures import demo, mail_app, smtp  # noqa: F401 (fixtures)

from panel import clock
from panel.extensions import db
from panel.models import User
from panel.reminders import settings, sweep

UTC = timezone.utc
PEOPLE = {"admin@example.com", "chloe@example.com"}  # Demo Ltd's opted-in users
STEP = timedelta(hours=1)  # every expected send instant below is on the hour


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def admin() -> User:
    return User.query.filter_by(email="admin@example.com").one()


def save(key: str, value) -> None:
    """Change a reminder setting as the admin's inline save does (the token's window moves with it)."""
    settings.save(demo().id, settings.SETTINGS[key], value, admin())
    db.session.remove()


def setup(tz: str, hour: int, at: datetime) -> None:
    company = demo()
    company.timezone, company.reminder_hour = tz, hour
    db.session.commit()
    clock.freeze(at - timedelta(days=70))
    connect_sage(at=at - timedelta(days=70))  # a 90-day token: the 28-day window is open from `at` on
    db.session.remove()


def run(start: datetime, end: datetime, events: dict[datetime, callable] | None = None) -> None:
    """A sweep every hour from ``start`` to ``end``; ``events[t]()`` runs just before the sweep at ``t``."""
    t = start
    while t <= end:
        clock.freeze(t)
        if events and t in events:
            events[t]()
        sweep.run(t, inline=True)
        db.session.remove()
        t += STEP


def sends(smtp) -> dict[str, list[datetime]]:
    """When each person was sent a reminder (the Date header is the sweep's frozen instant)."""
    found: dict[str, list[datetime]] = defaultdict(list)
    for m in smtp.handler.messages:
        found[m["To"].addresses[0].addr_spec].append(m["Date"].datetime.astimezone(UTC))
    return found


def assert_20_hours_apart(found: dict[str, list[datetime]]) -> None:
    for who, times in found.items():
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(g >= timedelta(hours=20) for g in gaps), (who, times)


@pytest.mark.parametrize("hour, start, to_pago, to_kiritimati, expected", [
    # Sent at Kiritimati 09:00 Mon 11 Jan (19:00Z). Moved to Pago_Pago an hour later, at 09:00 Sun 10 Jan local:
    # that Pago_Pago day (11:00Z 10 Jan - 11:00Z 11 Jan) already had its reminder, so the next goes at 09:00 Mon
    # 11 Jan Pago_Pago time — not skipped because Kiritimati used that date. Back to Kiritimati at 11:00 Wed 13 Jan
    # local: that Kiritimati day (10:00Z 12 Jan on) had one (20:00Z), so the next is 09:00 Thu 14 Jan Kiritimati.
    (9, utc(2027, 1, 10, 18), utc(2027, 1, 10, 20), utc(2027, 1, 12, 21),
     [utc(2027, 1, 10, 19), utc(2027, 1, 11, 20), utc(2027, 1, 12, 20), utc(2027, 1, 13, 19), utc(2027, 1, 14, 19)]),
    # The case, send hour 00:00: Kiritimati's Mon 11 Jan reminder at 10:00Z; an hour later Pago_Pago's
    # Sun 10 Jan begins, after it, so that day gets one too — 20 hours after the last (19:00 local); the following
    # days move back to 00:00 by 4 hours a day. Back to Kiritimati on 13 Jan: 20 hours after the last, then daily.
    (0, utc(2027, 1, 10, 10), utc(2027, 1, 10, 11), utc(2027, 1, 13, 12),
     [utc(2027, 1, 10, 10), utc(2027, 1, 11, 6), utc(2027, 1, 12, 2), utc(2027, 1, 12, 22), utc(2027, 1, 13, 18),
      utc(2027, 1, 14, 14), utc(2027, 1, 15, 10), utc(2027, 1, 16, 10)]),
], ids=["send at 09:00", "send at 00:00"])
def test_timezone_moved_across_the_date_line_and_back(mail_app, smtp, hour, start, to_pago, to_kiritimati,
                                                      expected):
    """Kiritimati (UTC+14) -> Pago_Pago (UTC-11) moves the local calendar back 25 hours; and forward again."""
    setup("Pacific/Kiritimati", hour, start)
    run(start, expected[-1] + timedelta(hours=2), {to_pago: lambda: save("timezone", "Pacific/Pago_Pago"),
                                                   to_kiritimati: lambda: save("timezone", "Pacific/Kiritimati")})
    found = sends(smtp)
    assert_20_hours_apart(found)
    assert found == {who: expected for who in PEOPLE}


def test_send_hour_moved_from_23_to_0_waits_20_hours(mail_app, smtp):
    """Sent at 23:00; the hour moved to 00:00 an hour later: the next goes 20 hours after the last, then the times
    move back to the send hour by at most 4 hours a day, never closer than 20 hours apart."""
    setup("Europe/London", 23, utc(2026, 11, 20, 12))
    run(utc(2026, 11, 20, 12), utc(2026, 11, 26, 12), {utc(2026, 11, 21, 0): lambda: save("hour", 0)})
    found = sends(smtp)
    assert_20_hours_apart(found)
    assert found["admin@example.com"] == [utc(2026, 11, 20, 23), utc(2026, 11, 21, 19), utc(2026, 11, 22, 15),
                                          utc(2026, 11, 23, 11), utc(2026, 11, 24, 7), utc(2026, 11, 25, 3),
                                          utc(2026, 11, 26, 0)]


def test_renewal_inside_a_window_longer_than_the_token_never_sends_twice_a_day(tmp_path, template_db, redis_server,
                                                                                smtp):
    """Reminder days 365, a 90-day token: the window is always open. A real Login Now renews it after today's
    reminder: nothing more that day; the next day's reminder goes at the send hour."""
    london = ZoneInfo("Europe/London")
    nine = datetime(2026, 11, 20, 9, tzinfo=london).astimezone(UTC)
    with start_live(tmp_path, template_db, redis_server, **smtp.config()) as live:
        app = live.app
        with app.app_context():
            save("days", 365)
        clock.freeze(nine - timedelta(hours=1))
        http = panel_sign_in(live.url)
        http.get(grant_redirect(http, live.url))  # connected at 08:00 (send hour 08:00)
        with app.app_context():
            run(nine, nine)
            assert len(smtp.handler.messages) == 2
        clock.freeze(nine + timedelta(minutes=20))
        http = panel_sign_in(live.url)
        landed = http.get(grant_redirect(http, live.url))  # Login Now again: generation 2
        assert "Connected to Sage" in landed.text
        with app.app_context():
            run(nine + timedelta(minutes=30), nine + timedelta(hours=22, minutes=30))
            assert len(smtp.handler.messages) == 2, [m["Subject"] for m in smtp.handler.messages]
            run(nine + timedelta(hours=23), nine + timedelta(days=2))
        clock.freeze(None)
    found = sends(smtp)
    assert_20_hours_apart(found)
    assert {who: [t.astimezone(london).strftime("%d %H:%M") for t in times] for who, times in found.items()} == {
        who: ["20 09:00", "21 08:00", "22 08:00"] for who in PEOPLE}


@pytest.mark.parametrize("days, lifetime, note", [(365, 90, True), (90, 90, True), (89, 90, False), (28, 90, False)])
def test_reminder_days_field_explains_a_window_longer_than_the_token(app, days, lifetime, note):
    from support import Session

    clock.freeze(utc(2026, 11, 20, 12))
    with app.app_context():
        connect_sage(lifetime=timedelta(days=lifetime))
    http = Session(app.test_client(), "admin@example.com")
    answer = http.post("/settings/sage/reminders/days", data={"reminder_days": str(days)})
    assert answer.status_code == 200 and ">Saved<" in answer.text, answer.text
    page = http.get("/settings/sage").text
    for text in (answer.text, page):
        assert ("reminders start as soon as the token is renewed" in text) is note
