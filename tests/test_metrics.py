"""/metrics: only for the Bearer token, parsed with prometheus_client's own text parser; every company's seconds
left, check outcomes, reminders by channel, and counts made in real RQ worker processes (forked work horses)."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import connect_sage, make_app
from test_jobs import worker_env

from panel import clock, events
from panel.extensions import db
from panel.jobs import enqueue
from panel.models import Company
from panel.reminders import channels, sweep
from panel.sage import check_state
from panel.sage.check import Kind, Outcome

TOKEN = "pX9eQ2v7Lr4tZk8sWn3bY6cHj1mFd5Ga0uE"
ROOT = Path(__file__).resolve().parent.parent
NOON = datetime(2027, 3, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def mapp(tmp_path, template_db, redis_server):
    from panel.redis_conn import get_redis

    application = make_app(tmp_path, template_db, redis_server, PANEL_METRICS_TOKEN=TOKEN,
                           PANEL_CHANNEL_ALLOW_PRIVATE=True, PANEL_CHANNEL_TIMEOUT=2)
    get_redis(application).flushdb()
    yield application
    clock.freeze(None)


def scrape(app) -> dict[str, list]:
    """name -> samples (name, labels, value), read by prometheus_client's parser."""
    resp = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    assert "version=" in resp.headers["Content-Type"] and resp.headers["Cache-Control"] == "no-store"
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def by(samples, **labels) -> float | None:
    hits = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return hits[0] if hits else None


def test_metrics_need_the_token(app, mapp):
    assert app.test_client().get("/metrics").status_code == 404  # no token configured: no page
    client = mapp.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401
    assert "set-cookie" not in {k.lower() for k in client.get("/metrics").headers.keys()}


def test_every_company_seconds_left_checks_and_reminders_by_channel(mapp):
    from webhook_server import Webhook

    clock.freeze(NOON)
    with mapp.app_context(), Webhook() as hook:
        demo = connect_sage("Demo Ltd", expires_at=NOON + timedelta(days=10))
        other = connect_sage("Other Co", expires_at=NOON + timedelta(days=60, seconds=7))
        company = db.session.get(Company, demo.company_id)
        channels.add(company, company.users[0], hook.url("json"), "ops")
        sweep.run(clock.now(), inline=True)  # 2 emails (demo outbox) and 1 channel reminder
        check_state.record(demo.company_id, Outcome(Kind.OK), demo.generation, NOON)
        check_state.record(other.company_id, Outcome(Kind.BROKEN, "403"), other.generation, NOON)
        demo_id, other_id = str(demo.company_id), str(other.company_id)
    found = scrape(mapp)
    left = found["panel_sage_token_seconds_left"]
    assert by(left, company_id=demo_id) == 10 * 86400 and by(left, company_id=other_id) == 60 * 86400 + 7
    assert "panel_sage_token_needs_login" not in found  # only companies that need Login Now are listed
    assert by(found["panel_connection_check_ok"], company_id=demo_id) == 1
    assert by(found["panel_connection_check_ok"], company_id=other_id) == 0
    assert by(found["panel_connection_broken_since_timestamp_seconds"], company_id=other_id) == NOON.timestamp()
    reminders = found["panel_reminders_total"]
    assert by(reminders, channel="email", status="sent") == 2
    assert by(reminders, channel="json", status="sent") == 1


def test_counts_made_in_real_worker_processes_are_not_lost(mapp):
    with mapp.app_context():
        events.emit(events.REFRESHED, company_id=1)  # counted here, in the web process
        jobs = [enqueue("panel.reminders.schedule.sweep") for _ in range(2)]
    rq = Path(sys.executable).parent / "rq"
    env = worker_env(mapp)
    env["PANEL_METRICS_TOKEN"] = TOKEN
    # Two worker processes at once, one job each, each forking a work horse for it.
    workers = [subprocess.Popen([str(rq), "worker", "--burst", "--max-jobs", "1", "-w", "panel.jobs.PanelWorker",
                                 "--url", mapp.config["REDIS_URL"], "panel"],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    assert all(job.get_status(refresh=True) == "finished" for job in jobs)
    found = scrape(mapp)
    assert by(found["panel_sweep_duration_seconds_count"]) == 2
    assert by(found["panel_sweep_duration_seconds_sum"]) > 0
    assert by(found["panel_sage_refresh_total"], outcome="ok") == 1
    assert by(found["panel_metrics_counters_up"]) == 1


def test_redis_down_events_are_dropped_not_raised_and_the_page_says_so(tmp_path, template_db):
    app = make_app(tmp_path, template_db, f"unix://{tmp_path}/no-redis.sock", PANEL_METRICS_TOKEN=TOKEN)
    with app.app_context():
        events.emit(events.REFRESHED, company_id=1)  # no exception: the refresh it counts goes on
    found = scrape(app)
    assert by(found["panel_metrics_counters_up"]) == 0 and "panel_sage_refresh_total" not in found
