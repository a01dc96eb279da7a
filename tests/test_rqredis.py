"""Issue 16 item 1, fast: RQ's processes' Redis client waits a real Redis outage out (redis-server stopped and
started again on the same port), logs it, and stops waiting once the process is stopping; production's commands
use it (the slow tests in tests/reliability run those very commands)."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import redis
from redis_tcp import RedisServer

from panel import rqredis, supervise
from panel.redis_conn import get_redis
from panel.rqredis import OUTAGE, PatientRedis

ROOT = Path(__file__).resolve().parent.parent
FLAG = "--connection-class panel.rqredis.PatientRedis"


@pytest.fixture
def server(tmp_path):
    with RedisServer(tmp_path / "redis").start() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_outage():
    saved = OUTAGE.stopping
    yield
    OUTAGE.stopping, OUTAGE.since = saved, None


def test_a_command_waits_for_redis_to_come_back(server, caplog, monkeypatch):
    monkeypatch.setattr(rqredis, "REMIND_EVERY", 0.5)  # "still unreachable" every minute in the panel
    client = PatientRedis.from_url(server.url)
    client.set("queued", "work")
    server.stop()
    done = {}
    caplog.set_level(logging.WARNING, logger="panel.redis")
    waiting = threading.Thread(target=lambda: done.update(value=client.get("queued")), daemon=True)
    waiting.start()
    time.sleep(1.5)
    assert waiting.is_alive() and not done  # not an error: a wait
    server.start()  # same port, same data
    waiting.join(15)
    assert done == {"value": b"work"}
    said = [r.getMessage() for r in caplog.records if r.name == "panel.redis"]
    assert said[0].startswith("Redis is unreachable (") and "this process waits for it" in said[0]
    assert said[-1].startswith("Redis answers again after ")
    assert said[1].startswith("Redis is unreachable for ") and "still waiting" in said[1]  # the reminder
    assert all(line.startswith("Redis is unreachable for ") for line in said[1:-1])


def test_a_stopping_process_does_not_wait(server):
    client = PatientRedis.from_url(server.url)
    server.stop()
    OUTAGE.stopping = True  # as PanelWorker.teardown, or a stop signal during a wait, sets it
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert time.monotonic() - started < 2


def test_the_web_client_still_fails_fast(app, tmp_path):
    """Only RQ's processes wait: a web request must answer, so the app's own client gives up at once."""
    down = RedisServer(tmp_path / "down")  # never started: nothing listens on its port
    app.config["REDIS_URL"] = down.url
    app.extensions.pop("panel_redis", None)
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        get_redis(app).ping()
    assert time.monotonic() - started < 5 and not isinstance(get_redis(app), PatientRedis)


def test_production_commands_run_rq_with_the_patient_client():
    procfile = (ROOT / "Procfile").read_text()
    for name in ("worker", "cron"):
        line = next(row for row in procfile.splitlines() if row.startswith(f"{name}:"))
        assert FLAG in line, line
    readme = (ROOT / "README.md").read_text()
    assert readme.count(FLAG) >= 2  # the production commands of the worker and the cron
    argv = [" ".join(p.argv) for p in supervise._programs("unix:///x.sock", 5000, 1) if p.name in ("worker", "cron")]
    assert len(argv) == 2 and all(FLAG in a for a in argv)
    assert rqredis.CAP <= 5  # after Redis returns, every process is back within a few seconds
