"""panel.reminders.plan: which reminders are due, when the next one goes, and a 40-day simulated sweep."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from panel.reminders.plan import (
    MIN_GAP,
    CompanyPlan,
    Due,
    History,
    NextReminder,
    company_is_due,
    due_reminders,
    local_date,
    next_reminder,
)

UTC = timezone.utc
LONDON = "Europe/London"
SYDNEY = "Australia/Sydney"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def midnight(day: date, tz_name: str) -> datetime:
    """The UTC instant local ``day`` began (for days whose midnight exists)."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz_name)).astimezone(UTC)


def sent(at: datetime) -> History:
    """A person's ledger history: one reminder, claimed and handed over at ``at``."""
    return History(claimed_at=at, sent_at=at)


# Expiry Thu 1 Apr 2027 10:00 BST (09:00Z); 28 days -> window opens Thu 4 Mar 2027 10:00 GMT (10:00Z).
BASE = CompanyPlan(company_id=1, tz_name=LONDON, send_hour=9, reminder_days=28, generation=3,
                   expires_at=utc(2027, 4, 1, 9))
# send_hour 1 in London meets both clock changes: 01:00 does not exist on 28 Mar 2027, and happens twice
# on 25 Oct 2026.
SPRING = CompanyPlan(2, LONDON, 1, 28, 1, utc(2027, 4, 10, 12))
AUTUMN = CompanyPlan(3, LONDON, 1, 28, 1, utc(2026, 11, 1, 12))
# Sydney 09:00 AEDT is 22:00Z the day before; window opens Mon 15 Mar 2027 11:00 AEDT (00:00Z).
OZ = CompanyPlan(4, SYDNEY, 9, 5, 1, utc(2027, 3, 20))
# Antarctica/Troll moves two hours at once (+00 -> +02 at 01:00Z), the one gap with a whole hour inside it.
TROLL = CompanyPlan(6, "Antarctica/Troll", 2, 28, 1, utc(2027, 4, 10))
# New York, send 09:00: expiry Fri 26 Feb 2027 22:29 EST, so the 28-day window opens Fri 29 Jan 22:29 EST, long
# after that day's 09:00 (issue 12: the page said the next reminder was 22:29 EST).
NEW_YORK = CompanyPlan(7, "America/New_York", 9, 28, 1, utc(2027, 2, 27, 3, 29))
# Sydney, send 09:00: expiry Mon 19 Apr 2027 15:00 AEST, 21 days -> window opens Mon 29 Mar 15:00 AEDT (04:00Z).
SYDNEY_AFTERNOON = CompanyPlan(8, SYDNEY, 9, 21, 1, utc(2027, 4, 19, 5))


@pytest.mark.parametrize("now, plan, due", [
    (utc(2027, 3, 3, 12), BASE, False),  # window not open
    (utc(2027, 3, 4, 9, 59), BASE, False),  # past the send hour, window opens at 10:00
    (utc(2027, 3, 4, 10), BASE, False),  # window opens after that day's send hour: first reminder next day
    (utc(2027, 3, 4, 23, 59), BASE, False),
    (utc(2027, 3, 5, 9), BASE, True),  # the first send hour inside the window
    (utc(2027, 3, 10, 8, 59), BASE, False),  # before send hour (GMT)
    (utc(2027, 3, 10, 9), BASE, True),  # at send hour
    (utc(2027, 3, 10, 23, 59), BASE, True),  # after send hour, same local day
    (utc(2027, 3, 30, 7, 59), BASE, False),  # 08:59 BST
    (utc(2027, 3, 30, 8), BASE, True),  # 09:00 BST
    (utc(2027, 4, 1, 9), BASE, True),  # the expiry instant
    (utc(2027, 4, 10, 9), BASE, True),  # expired nine days ago: still due
    (utc(2027, 4, 10, 7, 59), BASE, False),  # expired, but before today's send hour
    (utc(2027, 3, 27, 0, 59), SPRING, False),  # 00:59 GMT the day before the change
    (utc(2027, 3, 27, 1), SPRING, True),  # 01:00 GMT
    (utc(2027, 3, 28, 0, 59), SPRING, False),  # 00:59 GMT, 01:00 never comes that day
    (utc(2027, 3, 28, 1), SPRING, True),  # 02:00 BST: the first instant past 01:00
    (utc(2027, 3, 29, 0), SPRING, True),  # 01:00 BST
    (utc(2026, 10, 24, 23, 59), AUTUMN, False),  # 00:59 BST on 25 Oct
    (utc(2026, 10, 25, 0), AUTUMN, True),  # first 01:00 (BST)
    (utc(2026, 10, 25, 1), AUTUMN, True),  # second 01:00 (GMT): due, the ledger stops a second send
    (utc(2026, 10, 26, 0, 59), AUTUMN, False),  # 00:59 GMT the day after
    (utc(2027, 3, 14, 23, 59), OZ, False),  # 10:59 AEDT 15 Mar: past send hour, window opens at 11:00
    (utc(2027, 3, 15), OZ, False),  # window start (11:00 AEDT), after that day's 09:00
    (utc(2027, 3, 15, 21, 59), OZ, False),  # 08:59 AEDT on 16 Mar
    (utc(2027, 3, 15, 22), OZ, True),  # 09:00 AEDT on 16 Mar, still 15 Mar in UTC
    (utc(2027, 3, 28, 0, 59), TROLL, False),  # 00:59 +00
    (utc(2027, 3, 28, 1), TROLL, True),  # 03:00 +02: the clock skipped 02:00
    (utc(2027, 1, 30, 3, 29), NEW_YORK, False),  # the window opens at 22:29 EST, after the day's 09:00
    (utc(2027, 1, 30, 13, 59), NEW_YORK, False),  # 08:59 EST the next day
    (utc(2027, 1, 30, 14), NEW_YORK, True),  # 09:00 EST: the first reminder
])
def test_company_is_due(now, plan, due):
    assert company_is_due(now, plan) is due


@pytest.mark.parametrize("now, tz_name, expected", [
    (utc(2027, 3, 15, 22), SYDNEY, date(2027, 3, 16)),
    (utc(2027, 3, 15, 22), LONDON, date(2027, 3, 15)),
    (utc(2027, 6, 30, 23, 30), LONDON, date(2027, 7, 1)),  # BST
    (utc(2027, 1, 30, 23, 30), LONDON, date(2027, 1, 30)),  # GMT
    (utc(2027, 1, 30, 23, 30), "America/New_York", date(2027, 1, 30)),
    (utc(2027, 1, 31, 3), "America/New_York", date(2027, 1, 30)),
])
def test_local_date(now, tz_name, expected):
    assert local_date(now, tz_name) == expected


def test_due_reminders_one_per_recipient_with_days_left():
    got = due_reminders(utc(2027, 3, 10, 9), [BASE], {1: [10, 11, 10]}, {})
    today = date(2027, 3, 10)
    assert got == [Due(1, 10, 3, today, utc(2027, 3, 10), False, 22), Due(1, 11, 3, today, utc(2027, 3, 10), False, 22)]
    assert got[0].key == (1, 10, utc(2027, 3, 10))


@pytest.mark.parametrize("now, history, expected_users", [
    (utc(2027, 3, 10, 9), {}, [10, 11]),
    (utc(2027, 3, 10, 9), {(1, 10): sent(utc(2027, 3, 10, 9))}, [11]),  # already claimed today: excluded
    (utc(2027, 3, 10, 9), {(1, 10): sent(utc(2027, 3, 10, 9)), (1, 11): sent(utc(2027, 3, 10, 9))}, []),
    # Claimed today and never sent (skipped at send time, failed, a renewal): still that day's one.
    (utc(2027, 3, 10, 18), {(1, 10): History(claimed_at=utc(2027, 3, 10, 9))}, [11]),
    (utc(2027, 3, 10, 9), {(1, 10): sent(utc(2027, 3, 9, 9))}, [10, 11]),  # yesterday's, 24 hours ago
    (utc(2027, 3, 10, 9), {(1, 10): sent(utc(2027, 3, 9, 13))}, [10, 11]),  # yesterday's, exactly 20 hours ago
    (utc(2027, 3, 10, 9), {(1, 10): sent(utc(2027, 3, 9, 13, 0, 1))}, [11]),  # 19:59:59 ago
    (utc(2027, 3, 10, 9), {(1, 10): sent(utc(2027, 3, 9, 12, 59))}, [10, 11]),  # 20:01 ago
    (utc(2027, 3, 10, 9), {(2, 10): sent(utc(2027, 3, 10, 9))}, [10, 11]),  # another company's: not excluded
    (utc(2027, 3, 10, 8, 59), {}, []),  # before send hour
    (utc(2027, 3, 3, 12), {}, []),  # window not open
])
def test_due_reminders_ledger(now, history, expected_users):
    assert [d.user_id for d in due_reminders(now, [BASE], {1: [10, 11]}, history)] == expected_users


def test_min_gap_is_20_hours():
    assert MIN_GAP == timedelta(hours=20)


@pytest.mark.parametrize("now, expired, days_left, day", [
    (utc(2027, 3, 31, 9), False, 1, date(2027, 3, 31)),
    (utc(2027, 4, 1, 8, 30), False, 0, date(2027, 4, 1)),  # expiry day, half an hour before it
    (utc(2027, 4, 1, 9), True, 0, date(2027, 4, 1)),  # expired today
    (utc(2027, 4, 4, 12), True, -3, date(2027, 4, 4)),  # expired still due, days since as negative
])
def test_due_reminders_expiry(now, expired, days_left, day):
    assert due_reminders(now, [BASE], {1: [10]}, {}) == [Due(1, 10, 3, day, midnight(day, LONDON), expired,
                                                              days_left)]


def test_due_reminders_sydney_local_date_differs_from_utc():
    got = due_reminders(utc(2027, 3, 15, 22), [OZ, BASE], {4: [40], 1: [10]}, {})
    # Sydney: 09:00 AEDT Tue 16 Mar; London is at 22:00 GMT Mon 15 Mar, after its send hour too.
    assert got == [Due(4, 40, 1, date(2027, 3, 16), utc(2027, 3, 15, 13), False, 4),
                   Due(1, 10, 3, date(2027, 3, 15), utc(2027, 3, 15), False, 17)]


def test_two_zones_same_date_are_two_days():
    """Kiritimati's Mon 11 Jan and Pago_Pago's Mon 11 Jan are different days (25 hours apart): different keys."""
    kiritimati = CompanyPlan(9, "Pacific/Kiritimati", 0, 28, 1, utc(2027, 2, 1))
    pago = CompanyPlan(9, "Pacific/Pago_Pago", 0, 28, 1, utc(2027, 2, 1))
    first = due_reminders(utc(2027, 1, 10, 10), [kiritimati], {9: [90]}, {})
    second = due_reminders(utc(2027, 1, 11, 11), [pago], {9: [90]}, {(9, 90): sent(utc(2027, 1, 10, 10))})
    assert first[0].local_date == second[0].local_date == date(2027, 1, 11)
    assert first[0].key != second[0].key
    # An hour after Kiritimati's, Pago_Pago's Sun 10 Jan has just begun: no reminder within 20 hours.
    assert due_reminders(utc(2027, 1, 10, 11), [pago], {9: [90]}, {(9, 90): sent(utc(2027, 1, 10, 10))}) == []


def test_due_reminders_repeated_hour_is_one_local_day():
    first = due_reminders(utc(2026, 10, 25, 0), [AUTUMN], {3: [30]}, {})
    assert first == [Due(3, 30, 1, date(2026, 10, 25), utc(2026, 10, 24, 23), False, 7)]
    assert due_reminders(utc(2026, 10, 25, 1), [AUTUMN], {3: [30]}, {(3, 30): sent(utc(2026, 10, 25))}) == []


def test_due_reminders_without_recipients():
    assert due_reminders(utc(2027, 3, 10, 9), [BASE], {}, {}) == []


@pytest.mark.parametrize("now, plan, history, expected", [
    (utc(2027, 3, 10, 12), BASE, None, NextReminder(utc(2027, 3, 10, 12), due=True)),  # due and not sent: now
    (utc(2027, 3, 10, 12), BASE, sent(utc(2027, 3, 10, 9)), NextReminder(utc(2027, 3, 11, 9))),  # tomorrow
    # Claimed today but not sent (e.g. failed): today has had its reminder.
    (utc(2027, 3, 10, 12), BASE, History(claimed_at=utc(2027, 3, 10, 9)), NextReminder(utc(2027, 3, 11, 9))),
    (utc(2027, 3, 10, 7), BASE, None, NextReminder(utc(2027, 3, 10, 9))),  # today's send hour is still ahead
    (utc(2027, 3, 29, 12), BASE, sent(utc(2027, 3, 29, 8)), NextReminder(utc(2027, 3, 30, 8))),  # 09:00 BST
    (utc(2027, 3, 27, 12), BASE, sent(utc(2027, 3, 27, 9)), NextReminder(utc(2027, 3, 28, 8))),  # into BST
    # The window opens (10:00) after its day's send hour (09:00): the first reminder is the next day's 09:00.
    (utc(2027, 2, 1), BASE, None, NextReminder(utc(2027, 3, 5, 9))),
    (utc(2027, 3, 4, 6), BASE, None, NextReminder(utc(2027, 3, 5, 9))),
    (utc(2027, 2, 1), CompanyPlan(1, LONDON, 15, 28, 3, utc(2027, 4, 1, 9)), None, NextReminder(utc(2027, 3, 4, 15))),
    (utc(2027, 4, 10, 12), BASE, sent(utc(2027, 4, 10, 8)), NextReminder(utc(2027, 4, 11, 8))),  # expired: go on
    (utc(2027, 3, 27, 12), SPRING, sent(utc(2027, 3, 27, 1)), NextReminder(utc(2027, 3, 28, 1))),  # 02:00 BST
    (utc(2027, 3, 27, 12), CompanyPlan(2, LONDON, 2, 28, 1, utc(2027, 4, 10, 12)), sent(utc(2027, 3, 27, 2)),
     NextReminder(utc(2027, 3, 28, 1))),
    (utc(2027, 3, 28, 0, 30), SPRING, None, NextReminder(utc(2027, 3, 28, 1))),
    (utc(2026, 10, 24, 12), AUTUMN, sent(utc(2026, 10, 24)), NextReminder(utc(2026, 10, 25, 0))),  # first 01:00
    (utc(2026, 10, 25, 1, 30), AUTUMN, sent(utc(2026, 10, 25)), NextReminder(utc(2026, 10, 26, 1))),  # GMT
    # Sydney: the window opens at 11:00 AEDT, after 09:00: first reminder 09:00 AEDT Tue 16 Mar.
    (utc(2027, 3, 10), OZ, None, NextReminder(utc(2027, 3, 15, 22))),
    (utc(2027, 3, 15), OZ, None, NextReminder(utc(2027, 3, 15, 22))),
    (utc(2027, 4, 3, 0), OZ, sent(utc(2027, 4, 2, 22)), NextReminder(utc(2027, 4, 3, 23))),  # AEST: DST over
    (utc(2027, 3, 29, 5), SYDNEY_AFTERNOON, None, NextReminder(utc(2027, 3, 29, 22))),  # 09:00 AEDT Tue 30 Mar
    (utc(2011, 12, 29, 20), CompanyPlan(5, "Pacific/Apia", 9, 10, 1, utc(2012, 1, 5)), sent(utc(2011, 12, 29, 19)),
     NextReminder(utc(2011, 12, 30, 19))),  # Samoa skipped Fri 30 Dec 2011: next send is 09:00 Sat 31 Dec
    # Troll jumps 01:00 -> 03:00 local on 28 Mar 2027, so 02:00 lies inside the gap: first instant after it
    # is the jump (01:00Z, 03:00 +02), not 02:00 read at the old offset (02:00Z, 04:00 +02).
    (utc(2027, 3, 27, 12), TROLL, sent(utc(2027, 3, 27, 2)), NextReminder(utc(2027, 3, 28, 1))),
    (utc(2027, 3, 28, 0, 30), TROLL, None, NextReminder(utc(2027, 3, 28, 1))),
    # Issue 12: New York, send 09:00, window opening at 22:29 EST: the next reminder is 09:00 EST, not 22:29.
    (utc(2027, 1, 29, 17), NEW_YORK, None, NextReminder(utc(2027, 1, 30, 14))),
    (utc(2027, 1, 30, 3, 30), NEW_YORK, None, NextReminder(utc(2027, 1, 30, 14))),
    # Sent at 23:00, then the send hour moved to 00:00: the 20-hour gap sets the time, and says so.
    (utc(2026, 11, 21, 0, 30), CompanyPlan(1, LONDON, 0, 28, 1, utc(2026, 12, 10)), sent(utc(2026, 11, 20, 23)),
     NextReminder(utc(2026, 11, 21, 19), held=True)),
])
def test_next_reminder(now, plan, history, expected):
    assert next_reminder(now, plan, history) == expected


def test_plan_refuses_bad_values():
    with pytest.raises(ValueError):
        CompanyPlan(1, LONDON, 24, 28, 1, utc(2027, 4, 1))
    with pytest.raises(ValueError):
        CompanyPlan(1, LONDON, 9, 28, 1, datetime(2027, 4, 1))
    with pytest.raises(ValueError):
        local_date(datetime(2027, 4, 1), LONDON)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def test_forty_days_with_renewal_on_day_20():
    """Sweep every 15 minutes for 40 days: one Due per user per local day while due, none between renewal
    and the new window, across London's spring-forward day and the end of Sydney's summer time; each day's
    reminder at the send hour (the first one too), never two within 20 hours."""
    start, step = utc(2027, 3, 18), timedelta(minutes=15)
    renew_at = start + timedelta(days=20, hours=12)  # Wed 7 Apr 12:00Z: after both send hours that day
    # London, send 01:00: gen 1 expires Wed 31 Mar 13:00 BST, 7 days -> window Wed 24 Mar 13:00 GMT.
    # After renewal gen 2 (short demo lifetime) expires Wed 5 May 13:00 BST, 14 days -> Wed 21 Apr 13:00 BST.
    # Sydney, send 09:00: gen 1 expires Fri 2 Apr 11:00 AEDT, 5 days -> Sun 28 Mar 11:00 AEDT; DST ends 4 Apr.
    # After renewal gen 2 expires Mon 26 Apr 10:00 AEST, 5 days -> Wed 21 Apr 10:00 AEST (00:00Z).
    before = {1: CompanyPlan(1, LONDON, 1, 7, 1, utc(2027, 3, 31, 12)),
              2: CompanyPlan(2, SYDNEY, 9, 5, 1, utc(2027, 4, 2))}
    after = {1: CompanyPlan(1, LONDON, 1, 14, 2, utc(2027, 5, 5, 12)),
             2: CompanyPlan(2, SYDNEY, 9, 5, 2, utc(2027, 4, 26))}
    recipients = {1: [10, 11], 2: [20]}
    history: dict[tuple[int, int], History] = {}
    got: dict[tuple[int, int, int], list[date]] = defaultdict(list)
    dues: dict[tuple[int, int, int, date], Due] = {}
    first_instant: dict[tuple[int, int, date], datetime] = {}
    predicted: dict[int, NextReminder | None] = {}
    t = start
    while t < start + timedelta(days=40):
        plans = after if t >= renew_at else before
        if t == renew_at:
            predicted.clear()  # a renewal changes the plan, so earlier predictions no longer stand
        for due in due_reminders(t, plans.values(), recipients, history):
            earlier = history.get((due.company_id, due.user_id))
            assert earlier is None or t - earlier.sent_at >= MIN_GAP
            history[(due.company_id, due.user_id)] = sent(t)
            dues[(due.company_id, due.user_id, due.generation, due.local_date)] = due
            got[(due.company_id, due.user_id, due.generation)].append(due.local_date)
            first_instant.setdefault((due.company_id, due.generation, due.local_date), t)
        for cid, plan in plans.items():
            today = local_date(t, plan.tz_name)
            if first_instant.get((cid, plan.generation, today)) == t:
                # The prediction made one tick earlier lands inside the tick that actually sent.
                assert cid not in predicted or t - step < predicted[cid].at <= t
            predicted[cid] = next_reminder(t, plan, history.get((cid, recipients[cid][0])))
            assert predicted[cid] is not None and predicted[cid].at > t and not predicted[cid].due
        t += step

    assert got == {
        (1, 10, 1): _days(date(2027, 3, 25), date(2027, 4, 7)),
        (1, 11, 1): _days(date(2027, 3, 25), date(2027, 4, 7)),
        (1, 10, 2): _days(date(2027, 4, 22), date(2027, 4, 26)),
        (1, 11, 2): _days(date(2027, 4, 22), date(2027, 4, 26)),
        (2, 20, 1): _days(date(2027, 3, 29), date(2027, 4, 7)),
        (2, 20, 2): _days(date(2027, 4, 22), date(2027, 4, 27)),
    }
    # When each day's reminder went: at the send hour, the first of a window too; both clock changes.
    assert first_instant[(1, 1, date(2027, 3, 25))] == utc(2027, 3, 25, 1)  # window opened 13:00 the day before
    assert first_instant[(1, 1, date(2027, 3, 28))] == utc(2027, 3, 28, 1)  # no 01:00 that day: 02:00 BST
    assert first_instant[(1, 1, date(2027, 3, 29))] == utc(2027, 3, 29, 0)  # 01:00 BST
    assert first_instant[(1, 2, date(2027, 4, 22))] == utc(2027, 4, 22, 0)  # renewed window: 01:00 BST next day
    assert first_instant[(2, 1, date(2027, 3, 29))] == utc(2027, 3, 28, 22)  # window opened 11:00 AEDT the day before
    assert first_instant[(2, 1, date(2027, 4, 4))] == utc(2027, 4, 3, 23)  # 09:00 AEST, summer time over
    assert first_instant[(2, 2, date(2027, 4, 22))] == utc(2027, 4, 21, 23)
    assert not [key for key, at in first_instant.items() if renew_at <= at < utc(2027, 4, 21, 23)]
    # The wording inputs: counting down, expiry day, then days since expiry as negative numbers.
    assert (dues[(2, 20, 1, date(2027, 4, 2))].expired, dues[(2, 20, 1, date(2027, 4, 2))].days_left) == (False, 0)
    assert (dues[(2, 20, 1, date(2027, 4, 3))].expired, dues[(2, 20, 1, date(2027, 4, 3))].days_left) == (True, -1)
    assert (dues[(1, 10, 1, date(2027, 4, 7))].expired, dues[(1, 10, 1, date(2027, 4, 7))].days_left) == (True, -7)
    assert (dues[(1, 10, 2, date(2027, 4, 22))].expired, dues[(1, 10, 2, date(2027, 4, 22))].days_left) == (False, 13)
