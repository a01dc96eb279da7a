"""``GET /metrics`` in the Prometheus text format (prometheus_client), for a Bearer token (PANEL_METRICS_TOKEN;
without one the page does not exist).

Nothing is kept in process memory, so every gunicorn worker answers the same and nothing an RQ worker (or its
forked work horse) counted is lost: gauges and the reminder counters are read from the database at scrape time
(the ledgers are the record), and the counts of things that leave no row — token refreshes, connection checks,
sweeps — are kept in Redis (HINCRBY from any process, on any host), fed by the domain events.
"""
from __future__ import annotations

import hmac

import redis
from flask import Blueprint, Flask, Response, abort, current_app, has_app_context, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import func, select

from . import clock, events
from .extensions import db
from .models import ReminderDelivery, SageToken
from .models_alerts import ConnectionCheck, NoticeDelivery, NotifyChannel
from .redis_conn import redis_url

bp = Blueprint("metrics", __name__)
KEY = "panel:metrics"
DONE = ("sent", "failed", "uncertain")


def _redis() -> redis.Redis:
    """A client that gives up at once: a count must never hold up the work it counts."""
    app = current_app._get_current_object()
    client = app.extensions.get("panel_metrics_redis")
    if client is None:
        client = redis.Redis.from_url(redis_url(app), socket_connect_timeout=0.5, socket_timeout=1,
                                      retry=Retry(NoBackoff(), 0))
        app.extensions["panel_metrics_redis"] = client
    return client


def _fields(event: str, fields: dict) -> dict[str, float]:
    if event == events.REFRESHED:
        return {"refresh:ok": 1}
    if event == events.REFRESH_FAILED:
        return {"refresh:needs_login" if fields.get("needs_login") else "refresh:failed": 1}
    if event == events.CONNECTION_CHECKED:
        return {f"check:{fields.get('outcome')}": 1}
    if event == events.SWEEP_FINISHED:
        return {"sweep:count": 1, "sweep:seconds": float(fields.get("seconds") or 0)}
    return {}


def count(event: str, fields: dict) -> None:
    """The events listener: add the event to its counters in Redis (dropped, never raised, when Redis is down)."""
    todo = _fields(event, fields)
    if not todo or not has_app_context():
        return
    try:
        pipe = _redis().pipeline(transaction=False)
        for name, by in todo.items():
            pipe.hincrbyfloat(KEY, name, by)
        if event == events.SWEEP_FINISHED:
            pipe.hset(KEY, mapping={"sweep:last_seconds": todo["sweep:seconds"],
                                    "sweep:last_at": clock.now().timestamp()})
        pipe.execute()
    except (redis.RedisError, OSError):
        current_app.logger.warning("metrics: could not count %s (Redis unavailable)", event)


class PanelCollector:
    """Builds every metric at scrape time."""

    def collect(self):
        """Yield the metric families."""
        yield from self._tokens()
        yield from self._checks()
        yield from self._deliveries()
        yield from self._counters()

    def _tokens(self):
        now = clock.now()
        left = GaugeMetricFamily("panel_sage_token_seconds_left", "Seconds until the company's Sage token "
                                 "expires (negative once expired).", labels=["company_id"])
        # Only the companies that need Login Now: one series per company is the page's whole size at scale.
        needs = GaugeMetricFamily("panel_sage_token_needs_login", "1 for each company whose token only a new "
                                  "Login Now can help (absent otherwise).", labels=["company_id"])
        rows = db.session.execute(select(SageToken.company_id, SageToken.expires_at, SageToken.state))
        for cid, expires, state in rows:
            left.add_metric([str(cid)], round((expires - now).total_seconds()))
            if state == "needs_login":
                needs.add_metric([str(cid)], 1)
        return [left, needs]

    def _checks(self):
        ok = GaugeMetricFamily("panel_connection_check_ok", "1: the last daily connection check passed; 0: the "
                               "connection is broken. Companies whose check is on and has run.", labels=["company_id"])
        last = GaugeMetricFamily("panel_connection_check_last_timestamp_seconds", "When the last check ran.",
                                 labels=["company_id"])
        since = GaugeMetricFamily("panel_connection_broken_since_timestamp_seconds", "When the open incident "
                                  "began (broken companies only).", labels=["company_id"])
        rows = db.session.execute(select(ConnectionCheck).where(ConnectionCheck.enabled.is_(True),
                                                                ConnectionCheck.status.is_not(None))).scalars()
        for row in rows:
            cid = str(row.company_id)
            ok.add_metric([cid], 1 if row.status == "ok" else 0)
            last.add_metric([cid], row.checked_at.timestamp())
            if row.status == "failing" and row.failing_since:
                since.add_metric([cid], row.failing_since.timestamp())
        return [ok, last, since]

    def _deliveries(self):
        reminders = CounterMetricFamily("panel_reminders", "Reminders by channel (email, or the channel's "
                                        "service) and outcome, counted from the ledgers.", labels=["channel", "status"])
        alerts = CounterMetricFamily("panel_connection_alerts", "Connection alert and recovery messages by channel "
                                     "and outcome.", labels=["channel", "kind", "status"])
        email = db.session.execute(select(ReminderDelivery.status, func.count()).where(
            ReminderDelivery.status.in_(DONE)).group_by(ReminderDelivery.status))
        for status, n in email:
            reminders.add_metric(["email", status], n)
        channel = func.coalesce(NotifyChannel.service, "email")
        rows = db.session.execute(
            select(channel, NoticeDelivery.kind, NoticeDelivery.status, func.count())
            .outerjoin(NotifyChannel, NotifyChannel.id == NoticeDelivery.channel_id)
            .where(NoticeDelivery.status.in_(DONE)).group_by(channel, NoticeDelivery.kind, NoticeDelivery.status))
        for service, kind, status, n in rows:
            if kind == "reminder":
                reminders.add_metric([service, status], n)
            else:
                alerts.add_metric([service, kind, status], n)
        return [reminders, alerts]

    def _counters(self):
        up = GaugeMetricFamily("panel_metrics_counters_up", "1 when the event counters below could be read "
                               "from Redis.")
        try:
            raw = {k.decode(): float(v) for k, v in _redis().hgetall(KEY).items()}
        except (redis.RedisError, OSError):
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        refresh = CounterMetricFamily("panel_sage_refresh", "Access token refreshes by outcome (needs_login: "
                                      "Sage ID refused for good).", labels=["outcome"])
        checks = CounterMetricFamily("panel_connection_checks", "Daily connection checks by outcome.",
                                     labels=["outcome"])
        for name, value in sorted(raw.items()):
            what, _, label = name.partition(":")
            if what == "refresh":
                refresh.add_metric([label], value)
            elif what == "check":
                checks.add_metric([label], value)
        sweep = SummaryMetricFamily("panel_sweep_duration_seconds", "How long reminder sweeps took.",
                                    count_value=raw.get("sweep:count", 0), sum_value=raw.get("sweep:seconds", 0))
        last = GaugeMetricFamily("panel_sweep_last_duration_seconds", "How long the last sweep took.",
                                 value=raw.get("sweep:last_seconds", 0))
        last_at = GaugeMetricFamily("panel_sweep_last_timestamp_seconds", "When the last sweep finished.",
                                    value=raw.get("sweep:last_at", 0))
        return [up, refresh, checks, sweep, last, last_at]


@bp.route("/metrics")
def metrics():
    """The metrics page: 404 unless PANEL_METRICS_TOKEN is set, 401 without ``Authorization: Bearer <it>``."""
    token = current_app.config.get("PANEL_METRICS_TOKEN")
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        return Response("A metrics token is required.\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'},
                        mimetype="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PanelCollector())
    try:
        body = generate_latest(registry)
    finally:
        db.session.remove()
    return Response(body, mimetype=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Register the page and start counting events."""
    app.register_blueprint(bp)
    events.subscribe("metrics", count)
