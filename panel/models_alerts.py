"""Models of issue 15: the daily connection checks, notification channels, and their ledger (kept beside
``models.py``, which holds the panel's core tables)."""
from __future__ import annotations

from . import clock
from .extensions import db
from .models import DeliveryStatus, UTCDateTime


class ConnectionCheck(db.Model):
    """The daily connection check of one company: when it runs next, how it last went, and its incidents.

    An incident opens when a check fails for good (``incident`` + 1, ``status`` 'failing') and closes when one
    passes; ``alerted``/``recovered`` say up to which incident the alert and recovery messages were claimed.
    """

    __tablename__ = "connection_check"
    company_id = db.Column(db.Integer, db.ForeignKey("company.id", ondelete="CASCADE"), primary_key=True)
    enabled = db.Column(db.Boolean, nullable=False, default=True)
    # When the next check is due: the company's daily slot, a retry, or (while a worker has it) a lease.
    next_at = db.Column(UTCDateTime, nullable=False, index=True)
    checked_at = db.Column(UTCDateTime, nullable=True)
    ok_at = db.Column(UTCDateTime, nullable=True)
    status = db.Column(db.String(16), nullable=True)  # None until the first check: 'ok' | 'failing'
    generation = db.Column(db.Integer, nullable=True)  # the token generation the last check used
    transient = db.Column(db.Integer, nullable=False, default=0)  # consecutive transient failures so far
    failing_since = db.Column(UTCDateTime, nullable=True)
    reason = db.Column(db.String(500), nullable=True)
    incident = db.Column(db.Integer, nullable=False, default=0)
    alerted = db.Column(db.Integer, nullable=False, default=0)
    recovered = db.Column(db.Integer, nullable=False, default=0)

    __table_args__ = (db.CheckConstraint("status IN ('ok', 'failing')", name="status_valid"),)


class NotifyChannel(db.Model):
    """A notification channel of a company (Teams, Slack, any Apprise URL); the URL is encrypted at rest."""

    __tablename__ = "notify_channel"
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("company.id", ondelete="CASCADE"), nullable=False, index=True)
    service = db.Column(db.String(40), nullable=False)        # Apprise's protocol: msteams, slack, json, …
    service_name = db.Column(db.String(100), nullable=False)  # what people call it: "Slack", "JSON", …
    label = db.Column(db.String(100), nullable=False)
    url_enc = db.Column(db.Text, nullable=False)
    url_masked = db.Column(db.String(300), nullable=False)    # shown instead of the URL (secrets elided)
    url_digest = db.Column(db.String(64), nullable=False)     # keyed hash: the same URL twice is refused
    created_at = db.Column(UTCDateTime, nullable=False, default=clock.now)
    created_by_name = db.Column(db.String(200), nullable=False)

    __table_args__ = (
        db.UniqueConstraint("company_id", "url_digest", name="uq_notify_channel_url"),
        # Ids are never reused (SQLite too), so a new channel never inherits a deleted one's ledger rows.
        {"sqlite_autoincrement": True},
    )


class NoticeDelivery(db.Model):
    """The ledger of channel messages and connection alerts: at most one row per (target, kind, key).

    ``target`` is ``channel:<id>`` or ``user:<id>``; ``kind`` is reminder (``key``: the instant the company's local
    day began), broken or recovered (``key``: the incident number). Claimed before sending, marked ``sending``
    with ``handed_at`` just before the message leaves, then sent, failed, skipped or uncertain.
    """

    __tablename__ = "notice_delivery"
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("company.id", ondelete="CASCADE"), nullable=False)
    channel_id = db.Column(db.Integer, db.ForeignKey("notify_channel.id", ondelete="CASCADE"), nullable=True)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"), nullable=True)
    target = db.Column(db.String(40), nullable=False)
    kind = db.Column(db.String(16), nullable=False)
    key = db.Column(db.String(40), nullable=False)
    generation = db.Column(db.Integer, nullable=True)
    day_start = db.Column(UTCDateTime, nullable=True)
    status = db.Column(db.String(16), nullable=False, default=DeliveryStatus.CLAIMED.value)
    attempts = db.Column(db.Integer, nullable=False, default=0)
    claimed_at = db.Column(UTCDateTime, nullable=False, default=clock.now)
    sending_since = db.Column(UTCDateTime, nullable=True)
    handed_at = db.Column(UTCDateTime, nullable=True)
    finished_at = db.Column(UTCDateTime, nullable=True)
    reason = db.Column(db.String(500), nullable=True)

    __table_args__ = (
        db.UniqueConstraint("target", "kind", "key", name="uq_notice_delivery_key"),
        db.Index("ix_notice_delivery_status", "status", "claimed_at"),
        db.Index("ix_notice_delivery_company", "company_id", "kind", "claimed_at"),
        db.CheckConstraint("kind IN ('reminder', 'broken', 'recovered')", name="kind_valid"),
        db.CheckConstraint("status IN ('claimed', 'sending', 'sent', 'failed', 'skipped', 'uncertain')",
                           name="status_valid"),
    )
