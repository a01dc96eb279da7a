"""The daily connection check through real parts: a real Login Now at the demo SageID over HTTP, a grant revoked
there, the check's real GET /sites and refresh, and the alert emails as aiosmtpd received them."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urljoin

import pytest
import requests
from oauth_flow import DEMO_EMAIL, DEMO_PASSWORD, grant_redirect, panel_sign_in, submit
from sqlalchemy import select, update
from support import connect_sage, run_together, start_live
from sweep_fixtures import smtp  # noqa: F401 (a fixture)

from panel import clock
from panel.demo_sageid.models import DemoToken
from panel.extensions import db
from panel.models import Company
from panel.models_alerts import ConnectionCheck, NoticeDelivery
from panel.reminders import checks
from panel.sage import check, check_state, store
from panel.sage.check import Kind, Outcome

RECIPIENTS = ["admin@example.com", "chloe@example.com"]  # Demo Ltd's opted-in, active users


@pytest.fixture
def live(tmp_path, template_db, redis_server, smtp):
    with start_live(tmp_path, template_db, redis_server, PANEL_CHECK_RETRY_SECONDS=[0.01], **smtp.config()) as s:
        yield s
    clock.freeze(None)


def login_now(live) -> None:
    """A real Login Now: demo SageID sign-in, consent, Grant, callback."""
    http = panel_sign_in(live.url)
    landed = http.get(grant_redirect(http, live.url))
    assert landed.status_code == 200, landed.text


def company_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(Company.id).filter_by(name="Demo Ltd"))


def revoke_grant(live) -> None:
    """Revoke the consent at the demo SageID, as a person does in Sage ID's "Connected apps" (over HTTP)."""
    http = requests.Session()
    page = http.get(f"{live.url}/demo-sageid/apps")
    resp = submit(http, page, email=DEMO_EMAIL, password=DEMO_PASSWORD)
    page = http.get(urljoin(page.url, resp.headers["Location"]))
    assert "CRM Sage panel" in page.text and "Revoke access" in page.text
    resp = submit(http, page)
    assert resp.status_code == 200 and "Access revoked" in resp.text and "No app has access" in resp.text
    with live.app.app_context():
        assert db.session.scalar(select(DemoToken).where(DemoToken.revoked_at.is_(None))) is None


def widget(live) -> str:
    """The widget as the admin sees it now (signed in afresh: the frozen clock may have moved past the session)."""
    http = panel_sign_in(live.url)
    return http.get(f"{live.url}/settings/sage/widget", headers={"HX-Request": "true"}).text


def subjects(smtp) -> list[tuple[str, str]]:
    return [(m["To"].addresses[0].addr_spec, str(m["Subject"])) for m in smtp.handler.messages]


def test_revoked_grant_found_by_the_next_check_alerts_once_and_recovers_once(live, smtp):
    app, cid = live.app, company_id(live.app)
    slot = check_state.next_slot(cid, clock.now())
    clock.freeze(slot - timedelta(hours=3))
    login_now(live)
    with app.app_context():
        assert checks.tick(inline=True)["due"] == 0  # the company gets its slot; nothing due before it
        assert db.session.get(ConnectionCheck, cid).next_at == slot
        clock.freeze(slot + timedelta(seconds=1))
        assert checks.tick(inline=True)["ok"] == 1  # a real GET /sites (after a real refresh: 3 hours passed)
    page = widget(live)
    assert "Last checked OK" in page and "Connected" in page

    revoke_grant(live)
    with app.app_context():
        next_day = db.session.get(ConnectionCheck, cid).next_at
        assert next_day - slot == timedelta(days=1)  # once a day, at the company's slot
        clock.freeze(next_day + timedelta(seconds=1))
        assert checks.tick(inline=True)["broken"] == 1
    page = widget(live)
    assert "widget-red" in page and "Needs Login Now" in page and "invalid_grant" in page and "revoked" in page and "since" in page
    assert sorted(subjects(smtp)) == sorted((r, "Sage connection broken for Demo Ltd — sync has stopped")
                                            for r in RECIPIENTS)

    with app.app_context():  # failing: checked hourly, and no second alert for the same incident
        for hours in range(1, 4):
            clock.freeze(next_day + timedelta(hours=hours, seconds=2))
            assert checks.tick(inline=True)["broken"] == 1
    assert len(smtp.handler.messages) == 2

    login_now(live)  # someone renews: the next tick checks again, finds it working, says so once
    with app.app_context():
        clock.freeze(clock.now() + timedelta(minutes=1))
        assert checks.tick(inline=True)["ok"] == 1
        clock.freeze(clock.now() + timedelta(hours=2))
        checks.tick(inline=True)
    recovered = [s for s in subjects(smtp)[2:]]
    assert sorted(recovered) == sorted((r, "Sage connection working again for Demo Ltd") for r in RECIPIENTS)
    assert "Last checked OK" in widget(live)
    with app.app_context():
        rows = db.session.scalars(select(NoticeDelivery.status)).all()
        assert rows == ["sent"] * 4


def test_a_revoked_grant_with_a_valid_access_token_is_refreshed_once_and_found_broken(live):
    app, cid = live.app, company_id(live.app)
    login_now(live)
    revoke_grant(live)
    with app.app_context():
        outcome = check.run(cid)
        assert outcome.kind is Kind.BROKEN and "invalid_grant" in outcome.reason
        assert store.current(cid).state == "needs_login"


def test_a_transient_failure_is_retried_before_anyone_is_alerted(live, smtp):
    app, cid = live.app, company_id(live.app)
    login_now(live)
    with app.app_context():
        base = app.config["SAGE_API_BASE"]
        app.config["SAGE_API_BASE"] = "http://127.0.0.1:9"  # nothing listens: connection refused
        check_state.add_missing(clock.now())
        for n in range(1, check_state.TRANSIENT_LIMIT):
            db.session.execute(update(ConnectionCheck).values(next_at=clock.now()))
            db.session.commit()
            assert checks.tick(inline=True)["transient"] == 1
            assert db.session.get(ConnectionCheck, cid, populate_existing=True).transient == n
        assert smtp.handler.messages == []
        app.config["SAGE_API_BASE"] = base  # Sage answers again before the limit: no incident at all
        db.session.execute(update(ConnectionCheck).values(next_at=clock.now()))
        db.session.commit()
        assert checks.tick(inline=True)["ok"] == 1
        row = db.session.get(ConnectionCheck, cid, populate_existing=True)
        assert (row.transient, row.incident, row.status) == (0, 0, "ok")
    assert smtp.handler.messages == []


def test_three_transient_checks_in_a_row_count_as_broken_and_alert_once(live, smtp):
    app, cid = live.app, company_id(live.app)
    login_now(live)
    with app.app_context():
        app.config["SAGE_API_BASE"] = "http://127.0.0.1:9"  # Sage stays unreachable
        check_state.add_missing(clock.now())
        for n in range(check_state.TRANSIENT_LIMIT + 2):
            db.session.execute(update(ConnectionCheck).values(next_at=clock.now()))
            db.session.commit()
            checks.tick(inline=True)
        row = db.session.get(ConnectionCheck, cid, populate_existing=True)
        assert (row.status, row.incident) == ("failing", 1)
        assert "could not be reached" in row.reason and "3 checks in a row" in row.reason
    assert sorted(subjects(smtp)) == sorted((r, "Sage connection broken for Demo Ltd — sync has stopped")
                                            for r in RECIPIENTS)


def test_switched_off_the_check_does_not_run(live):
    app = live.app
    login_now(live)
    http = panel_sign_in(live.url)
    page = http.get(f"{live.url}/settings/sage").text
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    resp = http.post(f"{live.url}/settings/sage/alerts/check", data={"on": "0", "csrf_token": csrf},
                     headers={"HX-Request": "true"})
    assert 'aria-checked="false"' in resp.text
    with app.app_context():
        db.session.execute(update(ConnectionCheck).values(next_at=clock.now()))
        db.session.commit()
        assert checks.tick(inline=True)["due"] == 0
    assert "Daily connection check is off" in widget(live)


def test_a_due_check_is_claimed_once_even_by_ticks_at_the_same_time(app):
    from support import connect_sage, run_together

    with app.app_context():
        connect_sage()
        connect_sage("Other Co")
        check_state.add_missing(clock.now())
        db.session.execute(update(ConnectionCheck).values(next_at=clock.now()))
        db.session.commit()
    results, errors = run_together(app, 4, lambda: check_state.claim_due(clock.now()))
    assert errors == [] and sorted(cid for found in results for cid in found) == [1, 2]


def test_check_connection_stores_its_result_and_the_next_tick_alerts(live, smtp):
    login_now(live)
    revoke_grant(live)
    http = panel_sign_in(live.url)
    page = http.get(f"{live.url}/settings/sage").text
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    card = http.post(f"{live.url}/settings/sage/check", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
    assert "Connection check failed" in card.text and card.headers["HX-Trigger"] == "sage-token-changed"
    assert "widget-red" in widget(live) and "Last check failed" in widget(live)
    assert smtp.handler.messages == []
    with live.app.app_context():
        clock.freeze(clock.now() + timedelta(minutes=1))
        checks.tick(inline=True)
    assert sorted(subjects(smtp)) == sorted((r, "Sage connection broken for Demo Ltd — sync has stopped")
                                            for r in RECIPIENTS)


def test_a_company_disconnected_after_its_check_was_claimed_raises_no_alarm(app):
    with app.app_context():
        token = connect_sage()
        check_state.add_missing(clock.now())
        db.session.execute(update(ConnectionCheck).values(next_at=clock.now()))
        db.session.commit()
        claimed = check_state.claim_due(clock.now())
        store.disconnect(db.session.get(Company, token.company_id), token.connected_by)
        assert checks.check_batch(claimed) == {"skipped": 1}
        assert db.session.get(ConnectionCheck, token.company_id, populate_existing=True).incident == 0


def test_results_recorded_at_once_for_a_company_without_a_check_row_all_land(app):
    """Several Check connection clicks (or a click and the daily tick) finishing together for a company whose check
    row does not exist yet: one row, no duplicate-key error (tests/reliability/test_refresh_scale.py saw a 500)."""
    with app.app_context():
        token = connect_sage()
        cid, generation = token.company_id, token.generation
    outcome = Outcome(Kind.OK, "reaches 2 Sage 200 sites", 2)
    results, errors = run_together(app, 4, lambda: check_state.record(cid, outcome, generation, clock.now()))
    assert errors == []
    with app.app_context():
        row = db.session.get(ConnectionCheck, cid)
        assert (row.status, row.incident) == ("ok", 0)
    _, errors = run_together(app, 4, lambda: check_state.set_enabled(cid + 1, False, clock.now()))
    assert errors == []
