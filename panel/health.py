"""Probes for load balancers and orchestrators: ``/healthz`` (the process answers) and ``/readyz`` (the deployment
can do its work: the database, Redis and at least one live RQ worker answer, and reminder sweeps are running).

Readiness is the list CHECKS: each entry is a name and a function returning (ok, detail). Add a line to check
something more. Details name what failed, never a URL or a credential.
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Callable

import redis
from flask import Blueprint, Flask, current_app, jsonify
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Worker
from rq.defaults import DEFAULT_WORKER_TTL
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from . import clock, heartbeat
from .extensions import db
from .jobs import DEFAULT_QUEUE
from .redis_conn import redis_url

bp = Blueprint("health", __name__)

PROBE_TIMEOUT = 2.0  # seconds: a probe must answer quickly, whatever is down
# A worker refreshes its heartbeat at least every DEFAULT_WORKER_TTL seconds, and RQ drops its key 60 s after that.
WORKER_STALE = timedelta(seconds=DEFAULT_WORKER_TTL + 60)

Check = Callable[[], "tuple[bool, str]"]


def _probe_redis() -> redis.Redis:
    """A client that fails fast: no retries, short timeouts (the app's shared client retries)."""
    return redis.Redis.from_url(redis_url(current_app), socket_connect_timeout=PROBE_TIMEOUT,
                                socket_timeout=PROBE_TIMEOUT, retry=Retry(NoBackoff(), 0))


def check_database() -> tuple[bool, str]:
    """The database answers a query."""
    try:
        db.session.execute(text("SELECT 1"))
        return True, "ok"
    except SQLAlchemyError as exc:
        db.session.rollback()
        return False, f"unreachable ({type(exc).__name__})"
    finally:
        db.session.remove()


def check_redis() -> tuple[bool, str]:
    """Redis answers PING."""
    try:
        return bool(_probe_redis().ping()), "ok"
    except (redis.RedisError, OSError) as exc:
        return False, f"unreachable ({type(exc).__name__})"


def check_worker() -> tuple[bool, str]:
    """At least one RQ worker listening to the panel's queue has sent a heartbeat recently."""
    try:
        workers = Worker.all(connection=_probe_redis())
    except (redis.RedisError, OSError) as exc:
        return False, f"unknown: Redis unreachable ({type(exc).__name__})"
    now = clock.now()
    alive = [w for w in workers if DEFAULT_QUEUE in w.queue_names()
             and w.last_heartbeat is not None and now - w.last_heartbeat <= WORKER_STALE]
    if not alive:
        return False, "no worker has sent a heartbeat recently (is `rq worker` running?)"
    return True, f"{len(alive)} alive"


def check_scheduler() -> tuple[bool, str]:
    """A reminder sweep has completed within two sweep intervals (the heartbeat in the database)."""
    try:
        pulse = heartbeat.sweep_pulse(clock.now(), current_app.config["PANEL_SWEEP_INTERVAL_MINUTES"])
    except SQLAlchemyError as exc:
        db.session.rollback()
        return False, f"unknown: database unreachable ({type(exc).__name__})"
    finally:
        db.session.remove()
    hint = "reminders are not being sent (are `rq cron` and a worker running, and Redis?)"
    if pulse.last is None:
        return False, f"no reminder sweep has run yet: {hint}"
    ago = int((clock.now() - pulse.last).total_seconds())
    if pulse.stale:
        return False, f"no reminder sweep for {ago} s (more than two intervals): {hint}"
    return True, f"last reminder sweep {ago} s ago"


CHECKS: list[tuple[str, Check]] = [
    ("database", check_database),
    ("redis", check_redis),
    ("worker", check_worker),
    ("scheduler", check_scheduler),
]


@bp.route("/healthz")
def healthz():
    """Liveness: the process is up and serving requests; checks nothing else."""
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """Readiness: 200 when every check passes, else 503; the body says which failed."""
    started = time.monotonic()
    results = {}
    for name, check in CHECKS:
        ok, detail = check()
        results[name] = {"ok": ok, "detail": detail}
    ready = all(r["ok"] for r in results.values())
    body = {"status": "ok" if ready else "unavailable", "checks": results,
            "took_ms": round((time.monotonic() - started) * 1000, 1)}
    return jsonify(body), 200 if ready else 503


def init_app(app: Flask) -> None:
    """Register the probe routes (no session, no sign-in, no CSRF: they change nothing)."""
    app.register_blueprint(bp)
