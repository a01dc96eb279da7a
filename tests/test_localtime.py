"""panel.localtime: the reminder window, local dates, plurals and local date formatting, as tables of cases."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from panel.localtime import format_local, local_date, plural, window_start

UTC = timezone.utc
LONDON = "Europe/London"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


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
    lambda: format_local(datetime(2027, 4, 1), LONDON),
    lambda: local_date(datetime(2027, 4, 1), LONDON),
], ids=["naive expiry", "negative days", "naive format", "naive local date"])
def test_bad_input_is_refused(bad):
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize("at, tz_name, day", [
    (utc(2027, 4, 1, 23, 30), LONDON, date(2027, 4, 2)),      # 00:30 BST
    (utc(2027, 4, 1, 13, 59), "Australia/Sydney", date(2027, 4, 2)),
    (utc(2027, 4, 1, 10, 59), "Pacific/Pago_Pago", date(2027, 3, 31)),
])
def test_local_date(at, tz_name, day):
    assert local_date(at, tz_name) == day


@pytest.mark.parametrize("n, args, text", [
    (1, ("day",), "1 day"), (0, ("day",), "0 days"), (2, ("site",), "2 sites"),
    (1, ("person", "people"), "1 person"), (25, ("person", "people"), "25 people"),
])
def test_plural(n, args, text):
    assert plural(n, *args) == text


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
