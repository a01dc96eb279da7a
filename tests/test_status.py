"""panel.sage.status: token state, remaining-time text and lifetime bar, as tables of cases."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from panel.sage.status import State, TokenStatus, format_remaining, stable_until, token_status

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


@pytest.mark.parametrize("bad", [
    lambda: token_status(datetime(2027, 4, 1), consented_at=None, expires_at=EXPIRY, reminder_days=28,
                         tz_name=LONDON),
    lambda: token_status(utc(2027, 4, 1), consented_at=None, expires_at=datetime(2027, 4, 1), reminder_days=28,
                         tz_name=LONDON),
], ids=["naive now", "naive expiry"])
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


# --- stable_until: how long a widget's time-dependent text holds (the poll ETag's lifetime) -----------------------

def _shown(at, expires, consented, days=28, tz="Europe/London"):
    s = token_status(at, consented_at=consented, expires_at=expires, reminder_days=days, tz_name=tz)
    return s.state, s.remaining_text, s.used_permille


@pytest.mark.parametrize("left", [
    timedelta(days=80, hours=3, minutes=20, seconds=5),  # connected: "80 days, 3 hours" until the next hour
    timedelta(days=28, minutes=1),                         # a minute before the reminder window opens
    timedelta(days=1, seconds=20),                         # about to switch from hours to minutes
    timedelta(hours=5, minutes=3, seconds=2),
    timedelta(seconds=30),                                 # "less than a minute" until expiry
    timedelta(0),
    -timedelta(minutes=5, seconds=10),
    -timedelta(hours=3, minutes=1),
    -timedelta(days=3, hours=2),
])
@pytest.mark.parametrize("now", [datetime(2026, 11, 20, 12, 0, 30, tzinfo=timezone.utc),
                                 datetime(2026, 3, 28, 23, 59, 59, tzinfo=timezone.utc)])  # London's spring forward
def test_nothing_shown_changes_before_stable_until_and_something_does_at_it(now, left):
    expires = now + left
    consented = expires - timedelta(days=90)
    until = stable_until(now, consented_at=consented, expires_at=expires, reminder_days=28, tz_name="Europe/London")
    assert until > now
    before = _shown(now, expires, consented)
    for k in range(1, 64):
        assert _shown(now + (until - now) * k / 64, expires, consented) == before, k
    assert _shown(until - timedelta(microseconds=1), expires, consented) == before
    assert _shown(until + timedelta(milliseconds=1), expires, consented) != before


def test_stable_until_follows_the_lifetime_bar_and_nothing_when_not_connected():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
    consented = now - timedelta(minutes=10)
    expires = consented + timedelta(days=1, hours=2)  # a short lifetime: the bar's tenth of a percent is 94 s
    until = stable_until(now, consented_at=consented, expires_at=expires, reminder_days=1, tz_name="UTC")
    assert until - now < timedelta(seconds=95)
    assert _shown(until + timedelta(milliseconds=1), expires, consented, 1, "UTC")[2] == \
        _shown(now, expires, consented, 1, "UTC")[2] + 1
    assert stable_until(now, consented_at=None, expires_at=None, reminder_days=28, tz_name="UTC") is None
