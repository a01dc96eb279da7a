"""Issue 16 item 2: the scheduler's heartbeat. A sweep run from the schedule records it in the database; two sweep
intervals without one fail /readyz's ``scheduler`` check and put a warning on the Sage page for admins."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from support import Session, connect_sage, run_jobs

from panel import ConfigError, clock, heartbeat
from panel.config import sweep_interval_minutes
from panel.extensions import db
from panel.jobs import enqueue
from panel.models import Company, Heartbeat

NOON = datetime(2027, 3, 10, 12, 0, tzinfo=timezone.utc)  # London is on GMT then: 12:00 GMT
WARNING = "Reminders are not being sent: the scheduler has not run"


def _check(client) -> dict:
    return client.get("/readyz").json["checks"]["scheduler"]


def test_a_scheduled_sweep_records_the_heartbeat(app):
    clock.freeze(NOON)
    with app.app_context():
        assert heartbeat.sweep_pulse(NOON, 15) == heartbeat.Pulse(None, True, None)
        enqueue("panel.reminders.schedule.sweep", app=app)  # as rq cron enqueues it
        run_jobs(app)
        db.session.remove()
        assert db.session.get(Heartbeat, heartbeat.SWEEP).at == NOON
        assert heartbeat.sweep_pulse(NOON, 15) == heartbeat.Pulse(NOON, False, NOON + timedelta(minutes=30))


def test_the_heartbeat_never_moves_back(app):
    with app.app_context():
        heartbeat.beat(heartbeat.SWEEP, NOON)
        heartbeat.beat(heartbeat.SWEEP, NOON - timedelta(minutes=5))  # a slower worker finishing later
        assert db.session.get(Heartbeat, heartbeat.SWEEP).at == NOON


def test_readyz_fails_after_two_sweep_intervals_without_a_sweep(app, client):
    clock.freeze(NOON)
    check = _check(client)
    assert not check["ok"] and check["detail"].startswith("no reminder sweep has run yet")
    with app.app_context():
        heartbeat.beat(heartbeat.SWEEP, NOON)
    clock.freeze(NOON + timedelta(minutes=30))  # two intervals of 15 minutes: not yet
    assert _check(client) == {"ok": True, "detail": "last reminder sweep 1800 s ago"}
    clock.freeze(NOON + timedelta(minutes=30, seconds=1))
    check = _check(client)
    assert not check["ok"] and check["detail"].startswith("no reminder sweep for 1801 s (more than two intervals)")
    assert "rq cron" in check["detail"] and client.get("/readyz").status_code == 503


def test_the_sage_page_tells_admins_when_sweeps_stopped_and_clears(app, client):
    clock.freeze(NOON)
    with app.app_context():
        connect_sage(at=NOON - timedelta(days=10))
        heartbeat.beat(heartbeat.SWEEP, NOON - timedelta(minutes=45))
        db.session.remove()
    admin, ben = Session(client, "admin@example.com"), Session(app.test_client(), "ben@example.com")
    page = admin.get("/settings/sage").text
    assert f"{WARNING} since 11:15 GMT." in page  # the company's timezone (Europe/London)
    assert f"{WARNING} since 11:15 GMT." in admin.get("/settings/sage/widget", htmx=True).text
    assert WARNING not in ben.get("/settings/sage").text  # admins can act on it; users cannot
    with app.app_context():
        Company.query.filter_by(name="Demo Ltd").one().timezone = "America/New_York"
        db.session.commit()
    assert f"{WARNING} since 06:15 EST." in admin.get("/settings/sage").text
    with app.app_context():
        db.session.get(Heartbeat, heartbeat.SWEEP).at -= timedelta(days=1)
        db.session.commit()
    assert f"{WARNING} since Tue 9 Mar 2027, 06:15 EST." in admin.get("/settings/sage").text  # not today: dated
    with app.app_context():
        heartbeat.beat(heartbeat.SWEEP, clock.now())
    assert WARNING not in admin.get("/settings/sage").text
    assert WARNING not in admin.get("/settings/sage/widget", htmx=True).text


def test_a_scheduler_that_never_ran_is_named(app, client):
    clock.freeze(NOON)
    with app.app_context():
        connect_sage(at=NOON - timedelta(days=10))
        db.session.remove()
    assert f"{WARNING} yet." in Session(client, "admin@example.com").get("/settings/sage").text


@pytest.mark.parametrize("raw, minutes", [("", 15), ("15", 15), ("1", 1), (" 0.2 ", 0.2), ("1440", 1440)])
def test_the_sweep_interval_may_be_a_fraction_of_a_minute(raw, minutes):
    got = sweep_interval_minutes({"PANEL_SWEEP_INTERVAL_MINUTES": raw})
    assert got == minutes and type(got) is type(minutes)  # 15, not 15.0, in "within 15 minutes"


@pytest.mark.parametrize("raw", ["0", "0.05", "-1", "abc", "nan", "inf", "1441", "1e9"])
def test_a_bad_sweep_interval_is_named(raw):
    with pytest.raises(ConfigError, match="PANEL_SWEEP_INTERVAL_MINUTES must be a number of minutes"):
        sweep_interval_minutes({"PANEL_SWEEP_INTERVAL_MINUTES": raw})
