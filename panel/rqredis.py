"""The Redis client of RQ's processes: ``rq worker|cron --connection-class panel.rqredis.PatientRedis`` (RQ's own
option), whose every command waits a Redis outage out.

RQ 2.12 retries only the worker's idle wait for a job; a connection error anywhere else — the cron's tick or
heartbeat, the worker's heartbeat while a job runs (``monitor_work_horse``), the bookkeeping after a job — ends the
process, and with it the job in flight. RQ's scheduler process and the work horse are built from the same client
class and options, so they wait too.

A process that is stopping waits no more: ``PanelWorker.teardown`` says so, and so does a stop signal arriving
while a command waits. Nor does an orphan (its parent died: e.g. RQ's scheduler process after its worker was
killed), which would otherwise wait for ever for a Redis that went with its supervisor.
"""
from __future__ import annotations

import logging
import os
import threading
import time

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry
from rq.exceptions import StopRequested

log = logging.getLogger("panel.redis")

CAP = 5.0                                          # seconds: the longest wait between two tries
BACKOFF = EqualJitterBackoff(cap=CAP, base=0.25)   # 0.25–0.5 s, then doubling, then 2.5–5 s between tries
REMIND_EVERY = 60.0                                # seconds between "still unreachable" lines
STOPS = (StopRequested, KeyboardInterrupt, SystemExit)  # what RQ's signal handlers raise to stop a process


class _Outage:
    """The process's view of Redis: since when it has been unreachable, logged once, then once a minute; and
    whether the process is stopping (then nothing waits any more: a stop must not hang on a Redis that is away)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.since: float | None = None
        self.logged_at = 0.0
        self.stopping = False
        self.parent = os.getppid()

    def given_up(self) -> bool:
        """Whether this process should wait no more: it is stopping, or its parent has died (an orphan)."""
        return self.stopping or os.getppid() != self.parent

    def forked(self) -> None:
        """In a new child process: its own parent, its own outage."""
        self.lock, self.since, self.parent = threading.Lock(), None, os.getppid()

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
os.register_at_fork(after_in_child=OUTAGE.forked)


class PatientRetry(Retry):
    """redis-py's Retry, for ever: a connection error or a timeout is retried with backoff instead of raised."""

    def __init__(self):
        super().__init__(BACKOFF, retries=-1)

    def call_with_retry(self, do, fail, *args, **kwargs):
        """redis-py's retry loop, noting each failure and the recovery in the log; once the process is stopping,
        a failure is raised at once."""
        failures = []

        def failed(error, *more):
            fail(error, *more)  # redis-py's own clean-up (disconnect)
            if OUTAGE.given_up():
                raise error
            failures.append(error)
            OUTAGE.failed(error)

        try:
            result = super().call_with_retry(do, failed, *args, **kwargs)
        except STOPS:
            OUTAGE.stopping = True  # a stop signal arrived while waiting (RQ raises it from its handler)
            raise
        if failures:  # this very call failed, then got through: Redis answers again
            OUTAGE.recovered()
        return result


class PatientRedis(redis.Redis):
    """The Redis client of ``rq worker`` and ``rq cron`` (``--connection-class panel.rqredis.PatientRedis``):
    connection errors and timeouts are retried for as long as Redis is away. Never used by the web, whose
    requests must fail fast."""

    @classmethod
    def from_url(cls, url: str, **kwargs) -> "PatientRedis":
        """A client for ``url`` with PatientRetry on every connection (RQ builds its clients with this)."""
        kwargs.setdefault("retry", PatientRetry())
        kwargs.setdefault("socket_connect_timeout", 5)  # an unanswered connect counts as a failed try
        return super().from_url(url, **kwargs)
