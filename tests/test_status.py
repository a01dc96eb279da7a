"""panel.sage.status: token state, remaining-time text, lifetime bar and reminder window, as tables of cases."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from panel.sage.status import State, TokenStatus, format_local, format_remaining, token_status, window_start

UTC = timezone.utc
LONDON = "Europe/London"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# One 90-day token: consent Fri 1 Jan 2027 09:00 GMT, expiry Thu 1 Apr 2027 10:00 BST (09:00Z).
# 28 reminder days open the window on Thu 4 Mar 2027 10:00 GMT (10:00Z): the wall time is kept across
# the 28 Mar clock change, so the window opens 90 days - 28 days + 1 hour after consent.
CONSENT = utc(2027, 1, 1, 9)
EXPIRY = utc(2027, 4, 1, 9)
WINDOW = utc(2027, 3, 4, 10)
REASON = "invalid_grant: refresh token revoked"

STATUS_CASES = [
    # id, now, expires_at, reason, state, colour, label, remaining, remaining_text, reason out
    ("not connected", utc(2027, 2, 1, 9), None, None,
     State.NOT_CONNECTED, "grey", "Not connected", None, "", None),
    ("not connected ignores a reason", utc(2027, 2, 1, 9), None, REASON,
     State.NOT_CONNECTED, "grey", "Not connected", None, "", None),
    ("well before window", utc(2027, 2, 1, 9), EXPIRY, None,
     State.CONNECTED, "green", "Connected", timedelta(days=59), "59 days", None),
    ("one second before window start", WINDOW - timedelta(seconds=1), EXPIRY, None,
     State.CONNECTED, "green", "Connected", timedelta(days=27, hours=23, seconds=1), "27 days, 23 hours", None),
    ("exactly window start", WINDOW, EXPIRY, None,
     State.RENEW_SOON, "amber", "Renew soon", timedelta(days=27, hours=23), "27 days, 23 hours", None),
    ("last day", utc(2027, 3, 31, 13, 48), EXPIRY, None,
     State.RENEW_SOON, "amber", "Renew soon", timedelta(hours=19, minutes=12), "19 hours, 12 minutes", None),
    ("one minute before expiry", EXPIRY - timedelta(minutes=1), EXPIRY, None,
     State.RENEW_SOON, "amber", "Renew soon", timedelta(minutes=1), "1 minute", None),
    ("exactly at expiry", EXPIRY, EXPIRY, None,
     State.EXPIRED, "red", "Expired", timedelta(0), "expired just now", None),
    ("after expiry", utc(2027, 4, 4, 12, 30), EXPIRY, None,
     State.EXPIRED, "red", "Expired", -timedelta(days=3, hours=3, minutes=30), "expired 3 days ago", None),
    ("needs login before window", utc(2027, 2, 1, 9), EXPIRY, REASON,
     State.NEEDS_LOGIN, "red", "Needs Login Now", timedelta(days=59), "59 days", REASON),
    ("needs login beats renew soon", WINDOW, EXPIRY, REASON,
     State.NEEDS_LOGIN, "red", "Needs Login Now", timedelta(days=27, hours=23), "27 days, 23 hours", REASON),
    ("expired beats needs login but keeps reason", EXPIRY, EXPIRY, REASON,
     State.EXPIRED, "red", "Expired", timedelta(0), "expired just now", REASON),
]


@pytest.mark.parametrize(
    "now, expires_at, reason, state, colour, label, remaining, text, reason_out",
    [case[1:] for case in STATUS_CASES], ids=[case[0] for case in STATUS_CASES])
def test_token_status(now, expires_at, reason, state, colour, label, remaining, text, reason_out):
    status = token_status(now, consented_at=CONSENT if expires_at else None, expires_at=expires_at,
                          reminder_days=28, tz_name=LONDON, needs_login_reason=reason)
    assert (status.state, status.colour, status.label) == (state, colour, label)
    assert status.remaining == remaining
    assert status.remaining_text == text
    assert status.reason == reason_out
    assert status.expires_at == expires_at
    assert status.window_start == (WINDOW if expires_at else None)


def test_not_connected_is_all_empty():
    status = token_status(utc(2027, 2, 1), consented_at=None, expires_at=None, reminder_days=28, tz_name=LONDON)
    assert status == TokenStatus(State.NOT_CONNECTED, "grey", "Not connected", None, None, "", 0.0, None, 0.0, None)


@pytest.mark.parametrize("now, consented_at, reminder_days, used, window_fraction", [
    (CONSENT - timedelta(days=1), CONSENT, 28, 0.0, 1489 / 2160),  # clock skew before consent: clipped to 0
    (CONSENT, CONSENT, 28, 0.0, 1489 / 2160),
    (CONSENT + timedelta(days=45), CONSENT, 28, 0.5, 1489 / 2160),  # window: (62 d 1 h) / 90 d = 1489/2160
    (CONSENT + timedelta(days=72), CONSENT, 28, 0.8, 1489 / 2160),
    (EXPIRY, CONSENT, 28, 1.0, 1489 / 2160),
    (EXPIRY + timedelta(days=5), CONSENT, 28, 1.0, 1489 / 2160),  # after expiry: clipped to 1
    (CONSENT + timedelta(days=45), CONSENT, 120, 0.5, 0.0),  # window longer than the lifetime opens at 0
    (CONSENT + timedelta(days=45), CONSENT, 0, 0.5, 1.0),  # no reminder days: window at the very end
    (CONSENT + timedelta(days=45), None, 28, 0.0, 0.0),  # consent unknown: bar empty until expiry
    (EXPIRY, None, 28, 1.0, 0.0),  # ... and full once expired
], ids=["before consent", "at consent", "halfway", "four fifths", "at expiry", "after expiry",
        "window wider than lifetime", "zero reminder days", "no consent time", "no consent time expired"])
def test_lifetime_fractions(now, consented_at, reminder_days, used, window_fraction):
    status = token_status(now, consented_at=consented_at, expires_at=EXPIRY, reminder_days=reminder_days,
                          tz_name=LONDON)
    assert status.lifetime_used == used
    assert status.window_start_fraction == window_fraction


@pytest.mark.parametrize("expires_at, days, tz_name, opens", [
    # Europe/London spring forward, Sun 28 Mar 2027: 10:00 BST -> 10:00 GMT, one hour later in UTC.
    (utc(2027, 4, 1, 9), 28, LONDON, utc(2027, 3, 4, 10)),
    # Europe/London fall back, Sun 25 Oct 2026: 10:00 GMT -> 10:00 BST, one hour earlier in UTC.
    (utc(2026, 11, 5, 10), 28, LONDON, utc(2026, 10, 8, 9)),
    # Europe/London fall back, Sun 31 Oct 2027: 15:30 GMT -> 15:30 BST.
    (utc(2027, 11, 10, 15, 30), 14, LONDON, utc(2027, 10, 27, 14, 30)),
    # No clock change in between: plain calendar days.
    (utc(2027, 6, 30, 12), 28, LONDON, utc(2027, 6, 2, 12)),
    # Non-existent wall time: 01:30 on 28 Mar 2027 is read at GMT (fold=0) -> 01:30Z = 02:30 BST.
    (utc(2027, 4, 4, 0, 30), 7, LONDON, utc(2027, 3, 28, 1, 30)),
    # Ambiguous wall time: 01:30 on 25 Oct 2026 is its first occurrence (BST, fold=0) -> 00:30Z.
    (utc(2026, 11, 1, 1, 30), 7, LONDON, utc(2026, 10, 25, 0, 30)),
    # Australia/Sydney DST ends Sun 4 Apr 2027: 09:00 AEST (Apr 20) -> 09:00 AEDT on Tue 23 Mar (22 Mar UTC).
    (utc(2027, 4, 19, 23), 28, "Australia/Sydney", utc(2027, 3, 22, 22)),
    # Australia/Sydney DST starts Sun 4 Oct 2026: 09:00 AEDT (Oct 20) -> 09:00 AEST on Tue 22 Sep.
    (utc(2026, 10, 19, 22), 28, "Australia/Sydney", utc(2026, 9, 21, 23)),
    (utc(2027, 4, 1, 9), 0, LONDON, utc(2027, 4, 1, 9)),
    # Zero days with expiry in the repeated hour (second 01:30, GMT): exactly the expiry, not the first 01:30.
    (utc(2026, 10, 25, 1, 30), 0, LONDON, utc(2026, 10, 25, 1, 30)),
    (utc(2027, 4, 1, 9), 28, "UTC", utc(2027, 3, 4, 9)),
], ids=["london spring 2027", "london autumn 2026", "london autumn 2027", "london no change",
        "london gap", "london repeated hour", "sydney april 2027", "sydney october 2026", "zero days",
        "zero days in repeated hour", "utc"])
def test_window_start_keeps_local_wall_time(expires_at, days, tz_name, opens):
    assert window_start(expires_at, days, tz_name) == opens
    assert window_start(expires_at, days, tz_name).tzinfo == UTC


@pytest.mark.parametrize("bad", [
    lambda: window_start(datetime(2027, 4, 1, 9), 28, LONDON),
    lambda: window_start(utc(2027, 4, 1, 9), -1, LONDON),
    lambda: token_status(datetime(2027, 4, 1), consented_at=None, expires_at=EXPIRY, reminder_days=28,
                         tz_name=LONDON),
    lambda: format_local(datetime(2027, 4, 1), LONDON),
], ids=["naive expiry", "negative days", "naive now", "naive format"])
def test_bad_input_is_refused(bad):
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize("delta, text", [
    (timedelta(days=23, hours=4, minutes=59, seconds=59), "23 days, 4 hours"),
    (timedelta(days=23), "23 days"),
    (timedelta(days=1), "1 day"),
    (timedelta(days=1, hours=1), "1 day, 1 hour"),
    (timedelta(days=2, minutes=59), "2 days"),
    (timedelta(hours=24), "1 day"),
    (timedelta(hours=23, minutes=59, seconds=59, microseconds=999999), "23 hours, 59 minutes"),
    (timedelta(hours=5, minutes=12), "5 hours, 12 minutes"),
    (timedelta(hours=1), "1 hour"),
    (timedelta(hours=1, minutes=1), "1 hour, 1 minute"),
    (timedelta(hours=2, seconds=30), "2 hours"),
    (timedelta(minutes=12), "12 minutes"),
    (timedelta(minutes=1), "1 minute"),
    (timedelta(seconds=119), "1 minute"),
    (timedelta(seconds=59), "less than a minute"),
    (timedelta(seconds=59, microseconds=999999), "less than a minute"),
    (timedelta(microseconds=1), "less than a minute"),
    (timedelta(0), "expired just now"),
    (-timedelta(microseconds=1), "expired just now"),
    (-timedelta(seconds=59), "expired just now"),
    (-timedelta(minutes=1), "expired 1 minute ago"),
    (-timedelta(minutes=10, seconds=59), "expired 10 minutes ago"),
    (-timedelta(hours=1), "expired 1 hour ago"),
    (-timedelta(hours=5, minutes=59), "expired 5 hours ago"),
    (-timedelta(hours=23, minutes=59, seconds=59), "expired 23 hours ago"),
    (-timedelta(days=1), "expired 1 day ago"),
    (-timedelta(days=3, hours=23), "expired 3 days ago"),
])
def test_format_remaining(delta, text):
    assert format_remaining(delta) == text


@pytest.mark.parametrize("at, tz_name, text", [
    (utc(2027, 4, 1, 9), LONDON, "Thu 1 Apr 2027, 10:00 BST"),
    (utc(2027, 1, 5, 8, 5), LONDON, "Tue 5 Jan 2027, 08:05 GMT"),
    (utc(2026, 10, 25, 0, 30), LONDON, "Sun 25 Oct 2026, 01:30 BST"),  # first 01:30 of the repeated hour
    (utc(2026, 10, 25, 1, 30), LONDON, "Sun 25 Oct 2026, 01:30 GMT"),  # second one
    (utc(2027, 3, 22, 22), "Australia/Sydney", "Tue 23 Mar 2027, 09:00 AEDT"),
    (datetime(2027, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))), LONDON, "Sat 1 Jan 2028, 04:59 GMT"),
])
def test_format_local(at, tz_name, text):
    assert format_local(at, tz_name) == text
