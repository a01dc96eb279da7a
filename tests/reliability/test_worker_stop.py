"""A worker stopped while Redis is away stops within seconds, its scheduler process included (issue 16).

RQ's scheduler process (``--with-scheduler``) answers SIGTERM by setting a flag that its loop reads between Redis
commands; waiting out an outage inside one (``panel.rqredis.PatientRedis``), it never reads it, and RQ's worker
joined it without a bound, so ``rq worker`` hung until Redis came back (seen in test_redis_outage.py on CI).
"""
from __future__ import annotations

import re
import signal
import time

import pytest
from stack import RedisServer, Stack, stack_env, wait_until
from support import make_app, postgres_url

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    bool(postgres_url()), reason="process and Redis behaviour: the SQLite run covers it")]


def _waiting_pids(text: str) -> set[str]:
    return set(re.findall(r"worker\[(\d+)\] WARNING panel\.redis: Redis is unreachable", text))


def test_a_worker_stopped_during_an_outage_stops_with_its_scheduler(tmp_path, template_db, redis_server):
    server = RedisServer(tmp_path / "redis").start()
    app = make_app(tmp_path, template_db, redis_server, REDIS_URL=server.url)
    with Stack(stack_env(app, server.url), tmp_path) as stack, server:
        worker = stack.start("worker")
        wait_until(lambda: "Scheduler for panel started" in worker.text() or "started with PID" in worker.text(),
                   30, "the worker and its scheduler")
        time.sleep(2)  # the scheduler process runs its first loop
        server.stop()
        # Both the worker and its scheduler process are inside a Redis command, waiting the outage out.
        wait_until(lambda: len(_waiting_pids(worker.text())) >= 2, 20, "the worker and its scheduler waiting")
        worker.proc.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        worker.proc.wait(20)
        took = time.monotonic() - stopping
        assert took < 10, (took, worker.text())
