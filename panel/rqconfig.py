"""What RQ's processes run with: ``rq worker|cron -c panel.rqconfig --connection-class panel.rqconfig.PatientRedis``.

- ``-c panel.rqconfig``: importing this module puts RQ's own log lines in the panel's one format before RQ sets up
  handlers of its own (the worker would also get it when PanelWorker builds the app, but ``rq cron`` never does).
- ``--connection-class panel.rqconfig.PatientRedis`` (RQ's own option): a Redis client whose every command waits
  a Redis outage out. RQ 2.12 retries only the worker's idle wait for a job; a connection error anywhere else —
  the cron's tick or heartbeat, the worker's heartbeat while a job runs (``monitor_work_horse``), the bookkeeping
  after a job — ends the process, and with it the job in flight. RQ's scheduler process and the work horse are
  built from the same client class and options, so they wait too.
"""
from __future__ import annotations

import logging
import threading
import time

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

from .logs import configure

configure()
log = logging.getLogger("panel.redis")

CAP = 5.0                                          # seconds: the longest wait between two tries
BACKOFF = EqualJitterBackoff(cap=CAP, base=0.25)   # 0.25–0.5 s, then doubling, then 2.5–5 s between tries
REMIND_EVERY = 60.0                                # seconds between "still unreachable" lines


class _Outage:
    """The process's view of Redis: since when it has been unreachable, logged once, then once a minute."""

    def __init__(self):
        self.lock = threading.Lock()
        self.since: float | None = None
        self.logged_at = 0.0

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        with self.lock:
            if self.since is None:
                self.since, self.logged_at = now, now
                log.warning("Redis is unreachable (%s); this process waits for it, retrying with backoff "
                            "(at least every %.0f s)", error, CAP)
            elif now - self.logged_at >= REMIND_EVERY:
                self.logged_at = now
                log.warning("Redis is unreachable for %.0f s now (%s); still waiting", now - self.since, error)

    def recovered(self) -> None:
        with self.lock:
            if self.since is not None:
                log.warning("Redis answers again after %.0f s", time.monotonic() - self.since)
                self.since = None


OUTAGE = _Outage()


class PatientRetry(Retry):
    """redis-py's Retry, for ever: a connection error or a timeout is retried with backoff instead of raised."""

    def __init__(self):
        super().__init__(BACKOFF, retries=-1)

    def call_with_retry(self, do, fail, *args, **kwargs):
        """redis-py's retry loop, noting each failure and the recovery in the log."""

        failures = []

        def failed(error, *more):
            failures.append(error)
            OUTAGE.failed(error)
            return fail(error, *more)

        result = super().call_with_retry(do, failed, *args, **kwargs)
        if failures:  # this very call failed, then got through: Redis answers again
            OUTAGE.recovered()
        return result


class PatientRedis(redis.Redis):
    """The Redis client of ``rq worker`` and ``rq cron`` (``--connection-class panel.rqconfig.PatientRedis``):
    connection errors and timeouts are retried for as long as Redis is away. Never used by the web, whose
    requests must fail fast."""

    @classmethod
    def from_url(cls, url: str, **kwargs) -> "PatientRedis":
        """A client for ``url`` with PatientRetry on every connection (RQ builds its clients with this)."""
        kwargs.setdefault("retry", PatientRetry())
        kwargs.setdefault("socket_connect_timeout", 5)  # an unanswered connect counts as a failed try
        return super().from_url(url, **kwargs)
