"""/healthz and /readyz for load balancers: the process answers; the database, Redis and a worker are there."""
from __future__ import annotations

import pytest
from rq import Worker
from support import free_port, make_app

from panel import clock, health, heartbeat, weblog
from panel.redis_conn import get_redis


def test_healthz_answers_without_touching_anything(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json == {"status": "ok"}
    assert "Set-Cookie" not in resp.headers


def test_readyz_needs_a_live_worker(app, client):
    with app.app_context():
        heartbeat.beat(heartbeat.SWEEP, clock.now())  # sweeps run; only the worker is missing
    resp = client.get("/readyz")
    assert resp.status_code == 503
    checks = resp.json["checks"]
    assert checks["database"]["ok"] and checks["redis"]["ok"]
    assert not checks["worker"]["ok"] and "rq worker" in checks["worker"]["detail"]
    # A worker registers and beats its heart as `rq worker` does.
    worker = Worker(["panel"], connection=get_redis(app))
    worker.register_birth()
    worker.heartbeat()
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json["status"] == "ok"
        assert ready.json["checks"]["worker"] == {"ok": True, "detail": "1 alive"}
    finally:
        worker.register_death()
    assert client.get("/readyz").status_code == 503


def test_readyz_when_redis_is_down(tmp_path, template_db, redis_server):
    app = make_app(tmp_path, template_db, redis_server, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    checks = resp.json["checks"]
    assert checks["database"]["ok"] and not checks["redis"]["ok"] and not checks["worker"]["ok"]
    assert "127.0.0.1" not in resp.text  # names what failed, not where it lives


def test_readyz_when_the_database_is_unreachable(tmp_path, template_db, redis_server):
    app = make_app(tmp_path, template_db, redis_server,
                   SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/panel.sqlite3")
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503 and not resp.json["checks"]["database"]["ok"]
    assert resp.json["checks"]["redis"]["ok"]


def test_a_readiness_check_is_one_line_to_add(client, monkeypatch):
    monkeypatch.setattr(health, "CHECKS", health.CHECKS + [("scheduler", lambda: (False, "no heartbeat"))])
    resp = client.get("/readyz")
    assert resp.json["checks"]["scheduler"] == {"ok": False, "detail": "no heartbeat"}


@pytest.mark.parametrize("path, quiet", [
    ("/static/panel.css", True), ("/favicon.ico", True), ("/healthz", True), ("/readyz", True),
    ("/settings/sage/widget", True), ("/settings/notifications/test-email/abc", True),
    ("/settings/sage", False), ("/settings/sage/check", False), ("/login", False), ("/static", False),
])
def test_access_log_leaves_out_static_files_polls_and_probes(path, quiet):
    assert weblog.quiet(path) is quiet
