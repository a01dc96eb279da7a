"""Conditional widget polls: a poll that finds nothing changed is a 304 without rendering or reading the database;
a change anywhere (another process included), the time shown moving on, or a session ending gives a full answer."""
from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select, text
from support import PASSWORD, Session, base_env, connect_sage, make_app

from panel import accounts, clock, heartbeat
from panel.extensions import db
from panel.models import Company, ReminderDelivery, User
from panel.reminders import recipients
from panel.sage import check_state, store
from panel.sage.check import Kind, Outcome

POLL = {"HX-Request": "true", "X-Panel-Poll": "1"}
WIDGET = "/settings/sage/widget"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def statements(app, fn):
    """(fn()'s result, the SQL statements it ran)."""
    seen = []
    with app.app_context():
        engine = db.engine
    listener = lambda *a, **k: seen.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        return fn(), seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def poll(who, etag=None):
    return who.get(WIDGET, headers=dict(POLL, **({"If-None-Match": etag} if etag else {})))


def first(who):
    resp = poll(who)
    assert resp.status_code == 200 and resp.headers["ETag"].startswith('W/"'), resp.headers
    return resp


def connect(app, **kwargs):
    with app.app_context():
        connect_sage(**kwargs)
        # The scheduler runs: a sweep just now (else admins see its warning, re-rendered every minute).
        heartbeat.beat(heartbeat.SWEEP, clock.now())


def same_database(app, tmp_path, template_db, redis_server, **config):
    """A second app on the first one's database: another process, as far as poll versions go."""
    other = tmp_path / "other"
    other.mkdir()
    return make_app(other, template_db, redis_server, SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                    **config)


def test_unchanged_poll_is_304_without_any_database_statement(app, admin):
    app.config["PANEL_POLL_SYNC_SECONDS"] = 60  # this test is about the poll, not about a sync falling due
    connect(app)
    shown = first(admin)
    again, sql = statements(app, lambda: poll(admin, shown.headers["ETag"]))
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == shown.headers["ETag"]
    assert sql == []
    assert again.headers["Cache-Control"] == "no-store"  # like every HTML answer: nothing kept by caches


def test_the_304_as_it_travels(live_server):
    with live_server.app.app_context():
        connect_sage()
    cookie = Session(live_server.app.test_client(), "admin@example.com").client.get_cookie("panel_session").value
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    tag = send(conn, cookie).getheader("ETag")
    resp = send(conn, cookie, tag)
    raw_headers = {k.lower(): v for k, v in resp.getheaders()}
    assert (resp.status, resp.read(), raw_headers["etag"]) == (304, b"", tag)
    assert raw_headers.get("content-length", "0") == "0" and "content-type" not in raw_headers or resp.status == 304
    assert "HX-Request" in raw_headers["vary"] and raw_headers["cache-control"] == "no-store"


def send(conn, cookie, etag=None):
    """One poll over a kept-alive connection, as the browser sends it."""
    headers = {"Cookie": f"panel_session={cookie}", **POLL}
    if etag:
        headers["If-None-Match"] = etag
    conn.request("GET", WIDGET, headers=headers)
    resp = conn.getresponse()
    if etag is None:
        assert resp.status == 200, resp.status
        resp.read()
    return resp


def demo_id(app) -> int:
    with app.app_context():
        return db.session.execute(select(Company.id).filter_by(name="Demo Ltd")).scalar_one()


def _days(app):
    with app.app_context():
        db.session.execute(text("UPDATE company SET reminder_days = 9 WHERE name = 'Demo Ltd'"))
        db.session.commit()


def _switch(app):
    with app.app_context():
        ben = db.session.execute(select(User).filter_by(email="ben@example.com")).scalar_one()
        recipients.switch(ben, True, None)


def _disconnect(app):
    with app.app_context():
        company = db.session.get(Company, demo_id(app))
        store.disconnect(company, db.session.execute(select(User).filter_by(email="admin@example.com")).scalar_one())


def _ledger(app):
    with app.app_context():
        now = clock.now()
        chloe = db.session.execute(select(User).filter_by(email="chloe@example.com")).scalar_one()
        db.session.add(ReminderDelivery(company_id=chloe.company_id, user_id=chloe.id, generation=1,
                                        local_date=now.date() - timedelta(days=1), day_start=now - timedelta(days=1),
                                        status="sent", attempts=1,
                                        claimed_at=now, sending_since=now, finished_at=now, recipient=chloe.email))
        db.session.commit()


def _new_admin(app):
    with app.app_context():
        accounts.create_user(db.session.get(Company, demo_id(app)), "zed@example.com", "Aaron Zed", PASSWORD,
                             accounts.Role.ADMIN)


def _check_failed(app):
    with app.app_context():
        token = store.current(demo_id(app))
        check_state.record(token.company_id, Outcome(Kind.BROKEN, "Sage ID refused the refresh (invalid_grant)."),
                           token.generation, clock.now())


CHANGES = {  # what changes in another process, and what the widget then says
    "reminder days": (_days, "Reminder window (9 days)"),
    "a recipient switched on": (_switch, "to 3 recipients"),
    "disconnected": (_disconnect, "Not connected"),
    "a ledger outcome": (_ledger, "Last reminder:"),
    "an admin added": (_new_admin, "Aaron Zed"),
    "the daily check failed": (_check_failed, "Last check failed"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_in_another_process_gives_the_new_widget(app, tmp_path, template_db, redis_server, change):
    # A window opening far ahead: the widget says "Next reminder" and names its recipients.
    connect(app, expires_at=clock.now() + timedelta(days=80))
    app.config["PANEL_POLL_SYNC_SECONDS"] = 0.2
    reader = Session(app.test_client(), "ben@example.com")  # a user's widget names the admins
    shown = first(reader)
    assert poll(reader, shown.headers["ETag"]).status_code == 304
    make, expect = CHANGES[change]
    assert expect not in shown.text
    make(same_database(app, tmp_path, template_db, redis_server))
    time.sleep(0.25)  # PANEL_POLL_SYNC_SECONDS: how stale another process's answer may be
    fresh = poll(reader, shown.headers["ETag"])
    assert fresh.status_code == 200 and expect in fresh.text
    assert fresh.headers["ETag"] != shown.headers["ETag"]
    assert poll(reader, fresh.headers["ETag"]).status_code == 304


def test_a_change_by_a_separate_os_process(app):
    """The same, with the change made by a real second process (as another gunicorn worker or host would)."""
    connect(app)
    app.config["PANEL_POLL_SYNC_SECONDS"] = 0.2
    admin = Session(app.test_client(), "admin@example.com")
    shown = first(admin)
    code = ("from panel import create_app\nfrom panel.extensions import db\nfrom panel.reminders import settings\n"
            "app = create_app({'INSTANCE_PATH': sys.argv[1], 'ENV_VARS': env, 'SQLALCHEMY_DATABASE_URI': sys.argv[2],"
            " 'REDIS_URL': sys.argv[3]})\nwith app.app_context():\n"
            "    settings.save(1, settings.SETTINGS['days'], 11, None)\n")
    env = base_env()
    subprocess.run([sys.executable, "-c", "import sys\nenv = " + repr(env) + "\n" + code, app.instance_path,
                    app.config["SQLALCHEMY_DATABASE_URI"], app.config["REDIS_URL"]], check=True, cwd=ROOT,
                   capture_output=True, timeout=60)
    time.sleep(0.25)
    fresh = poll(admin, shown.headers["ETag"])
    assert fresh.status_code == 200 and "Reminder window (11 days)" in fresh.text


def test_a_change_in_this_process_is_seen_by_the_very_next_poll(app, admin):
    app.config["PANEL_POLL_SYNC_SECONDS"] = 3600  # no sync falls due: the commit itself marks the copy stale
    connect(app)
    shown = first(admin)
    _days(app)
    fresh = poll(admin, shown.headers["ETag"])
    assert fresh.status_code == 200 and "Reminder window (9 days)" in fresh.text


def test_sign_out_everywhere_ends_conditional_polls_at_once(app, admin):
    connect(app)
    app.config["PANEL_POLL_SYNC_SECONDS"] = 3600
    laptop = Session(app.test_client(), "admin@example.com")
    tag = first(laptop).headers["ETag"]
    assert poll(laptop, tag).status_code == 304
    admin.post("/logout/everywhere", htmx=False)
    gone = poll(laptop, tag)
    assert gone.status_code == 401 and gone.headers["HX-Redirect"].startswith("/login")


def test_revocation_in_another_process_ends_conditional_polls(app, user, tmp_path, template_db, redis_server):
    app.config["PANEL_POLL_SYNC_SECONDS"] = 0.2
    tag = first(user).headers["ETag"]
    other = same_database(app, tmp_path, template_db, redis_server)
    with other.app_context():
        accounts.deactivate(db.session.execute(select(User).filter_by(email="ben@example.com")).scalar_one())
    time.sleep(0.25)
    assert poll(user, tag).status_code == 401


def test_another_users_etag_is_not_accepted(app, admin, user):
    connect(app)
    theirs = first(user).headers["ETag"]
    mine = poll(admin, theirs)
    assert mine.status_code == 200 and "data-login-now" in mine.text  # the admin's widget, not the user's
    forged = theirs[:-5] + '0000"'
    assert poll(user, forged).status_code == 200


def test_the_etag_lasts_until_the_time_shown_changes(app, admin):
    at = datetime(2026, 11, 20, 12, 0, 30, tzinfo=timezone.utc)
    clock.freeze(at)
    connect(app, expires_at=at + timedelta(days=40, minutes=10))  # "40 days" until 12:10:30
    shown = first(admin)
    assert "40 days" in shown.text
    clock.freeze(at + timedelta(minutes=9))
    assert poll(admin, shown.headers["ETag"]).status_code == 304
    clock.freeze(at + timedelta(minutes=10, seconds=1))
    fresh = poll(admin, shown.headers["ETag"])
    assert fresh.status_code == 200 and "39 days, 23 hours" in fresh.text


def test_due_now_does_not_change_by_the_minute(app, admin):
    at = datetime(2026, 11, 20, 9, 5, tzinfo=timezone.utc)  # past Demo Ltd's 08:00 send hour, nothing sent
    clock.freeze(at)
    connect(app, expires_at=at + timedelta(days=5, minutes=30))
    shown = first(admin)
    assert "Next reminder: due now (today's 08:00 has passed), to 2 recipients" in shown.text
    clock.freeze(at + timedelta(minutes=7))
    assert poll(admin, shown.headers["ETag"]).status_code == 304


def test_conditional_polls_need_no_redis(tmp_path, template_db):
    app = make_app(tmp_path, template_db, "redis://127.0.0.1:1/0")  # nothing listens there
    admin = Session(app.test_client(), "admin@example.com")
    tag = first(admin).headers["ETag"]
    assert poll(admin, tag).status_code == 304
    assert admin.post("/logout", htmx=False).status_code == 302
    assert poll(admin, tag).status_code == 401


def test_event_refresh_always_renders(app, admin):
    app.config["PANEL_POLL_SYNC_SECONDS"] = 60
    connect(app)
    shown = first(admin)
    again, sql = statements(app, lambda: admin.get(WIDGET, htmx=True))  # sage-token-changed: no validator
    assert again.status_code == 200 and sql and again.headers["ETag"] == shown.headers["ETag"]


def test_the_scheduler_warning_appears_when_sweeps_stop_and_clears_after_one(app, admin):
    """A sweep's heartbeat raises no poll version: the ETag ends when the pulse would turn stale, and while the
    warning shows the widget is rendered afresh every minute, so it clears within a minute of a sweep."""
    at = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
    clock.freeze(at)
    connect(app, expires_at=at + timedelta(days=40, hours=2, minutes=45))  # sweeps every 15 min
    shown = first(admin)
    assert "scheduler has not run" not in shown.text
    clock.freeze(at + timedelta(minutes=29))
    assert poll(admin, shown.headers["ETag"]).status_code == 304
    clock.freeze(at + timedelta(minutes=30, seconds=1))  # two intervals without a sweep
    stale = poll(admin, shown.headers["ETag"])
    assert stale.status_code == 200
    assert "Reminders are not being sent: the scheduler has not run since 12:00 GMT." in stale.text
    with app.app_context():
        heartbeat.beat(heartbeat.SWEEP, clock.now())  # sweeps resume
    clock.freeze(at + timedelta(minutes=31, seconds=2))
    cleared = poll(admin, stale.headers["ETag"])
    assert cleared.status_code == 200 and "scheduler has not run" not in cleared.text


def test_the_scheduler_warning_is_the_admins_alone_a_users_poll_stays_304(app, admin, user):
    """No sweep has ever run: admins are warned (and their widget re-rendered each minute); a user is not, so a
    user's tab keeps its ETag (bench/tabs.py: every session re-rendered each minute otherwise)."""
    at = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
    clock.freeze(at)
    with app.app_context():
        connect_sage(expires_at=at + timedelta(days=40, hours=2, minutes=45))  # no heartbeat: never swept
    mine = first(user)
    assert "scheduler has not run" not in mine.text
    theirs = first(admin)
    assert "Reminders are not being sent: the scheduler has not run yet." in theirs.text
    clock.freeze(at + timedelta(minutes=5))
    assert poll(user, mine.headers["ETag"]).status_code == 304
    assert poll(admin, theirs.headers["ETag"]).status_code == 200
