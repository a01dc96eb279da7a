"""RQ queues on the panel's Redis; jobs are enqueued by dotted path so the web never imports worker code."""
from __future__ import annotations

from rq import Queue

from .redis_conn import get_redis

DEFAULT_QUEUE = "panel"


class QueueUnavailable(RuntimeError):
    """Redis cannot be reached, so background work cannot be queued now."""


def get_queue(name: str = DEFAULT_QUEUE, app=None) -> Queue:
    """The named RQ queue on this app's Redis."""
    return Queue(name, connection=get_redis(app))


def enqueue(func_path: str, *args, app=None, **kwargs):
    """Enqueue ``func_path`` (e.g. ``panel.jobs.ping``); raises QueueUnavailable when Redis is down."""
    import redis

    try:
        return get_queue(app=app).enqueue(func_path, *args, **kwargs)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise QueueUnavailable(str(exc)) from exc
