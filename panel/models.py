"""Database models: companies, users, their sessions, sign-in throttling, tokens, audit and the reminder ledger."""
from __future__ import annotations

import enum
from datetime import timezone

from flask_login import UserMixin
from sqlalchemy import types
from werkzeug.security import check_password_hash, generate_password_hash

from . import clock
from .extensions import db


class UTCDateTime(types.TypeDecorator):
    """Aware UTC datetimes in Python, stored naive-UTC so SQLite and PostgreSQL agree."""

    impl = types.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Role(str, enum.Enum):
    """What a user may do: admins manage the company's Sage connection and settings."""

    ADMIN = "admin"
    USER = "user"


class Company(db.Model):
    """A customer company of the CRM; owns one Sage token and its reminder settings."""

    __tablename__ = "company"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    timezone = db.Column(db.String(64), nullable=False, default="Europe/London")
    reminder_days = db.Column(db.Integer, nullable=False, default=28)
    reminder_hour = db.Column(db.Integer, nullable=False, default=8)
    # Incremented by every successful Login Now; survives Disconnect so generations never repeat.
    sage_generation = db.Column(db.Integer, nullable=False, default=0, server_default="0")
    created_at = db.Column(UTCDateTime, nullable=False, default=clock.now)

    users = db.relationship("User", back_populates="company")

    __table_args__ = (
        db.CheckConstraint("reminder_days BETWEEN 1 AND 365", name="reminder_days_range"),
        db.CheckConstraint("reminder_hour BETWEEN 0 AND 23", name="reminder_hour_range"),
    )


class User(UserMixin, db.Model):
    """A person who signs in; belongs to exactly one company."""

    __tablename__ = "user"
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("company.id"), nullable=False, index=True)
    email = db.Column(db.String(254), nullable=False, unique=True)
    name = db.Column(db.String(200), nullable=False)
    password_hash = db.Column(db.String(255), nullable=False)
    role = db.Column(db.String(16), nullable=False, default=Role.USER.value)
    active = db.Column(db.Boolean, nullable=False, default=True)
    notify_sage_token = db.Column(db.Boolean, nullable=False, default=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=clock.now)

    company = db.relationship("Company", back_populates="users")

    __table_args__ = (db.CheckConstraint("role IN ('admin', 'user')", name="role_valid"),)

    @property
    def is_active(self) -> bool:  # flask-login refuses inactive users
        return bool(self.active)

    @property
    def is_admin(self) -> bool:
        """True for company admins."""
        return self.role == Role.ADMIN.value

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password`` (werkzeug's scrypt)."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """True when ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)


class LoginThrottle(db.Model):
    """Sign-in attempts counted for one key (an account+address pair, or a client address); see auth/throttle.py."""

    __tablename__ = "login_throttle"
    key = db.Column(db.String(300), primary_key=True)
    failures = db.Column(db.Integer, nullable=False, default=0)
    window_start = db.Column(UTCDateTime, nullable=False)
    locked_until = db.Column(UTCDateTime, nullable=True)


class UserSession(db.Model):
    """One signed-in session, named by a random id kept in the (signed) session cookie.

    A request is signed in only while its row exists, so deleting the row ends the session everywhere at once.
    """

    __tablename__ = "user_session"
    id = db.Column(db.String(64), primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at = db.Column(UTCDateTime, nullable=False, default=clock.now, index=True)
    address = db.Column(db.String(64), nullable=True)
    user_agent = db.Column(db.String(200), nullable=True)


class TokenState(str, enum.Enum):
    """Whether the stored Sage token can be used, or needs a new Login Now."""

    OK = "ok"
    NEEDS_LOGIN = "needs_login"


class SageToken(db.Model):
    """The company's one current Sage ID token. Secrets are encrypted (see ``panel.crypto``)."""

    __tablename__ = "sage_token"
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("company.id", ondelete="CASCADE"), nullable=False, unique=True)
    generation = db.Column(db.Integer, nullable=False)
    connected_by_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    connected_by_name = db.Column(db.String(200), nullable=False)
    consented_at = db.Column(UTCDateTime, nullable=False)
    expires_at = db.Column(UTCDateTime, nullable=False)
    access_token_enc = db.Column(db.Text, nullable=True)
    access_expires_at = db.Column(UTCDateTime, nullable=True)
    refresh_token_enc = db.Column(db.Text, nullable=True)
    scope = db.Column(db.String(500), nullable=True)
    state = db.Column(db.String(16), nullable=False, default=TokenState.OK.value)
    state_reason = db.Column(db.String(500), nullable=True)
    last_refreshed_at = db.Column(UTCDateTime, nullable=True)
    # When the reminder window opens (expiry - reminder days, in the company's wall-clock time). Kept in step with
    # expires_at and the company's settings so the sweep can find due companies with one indexed range query.
    remind_from = db.Column(UTCDateTime, nullable=True)
    # Bumped on every save: refreshes write only if the version they read is still current (compare-and-swap).
    version = db.Column(db.Integer, nullable=False, default=1)
    updated_at = db.Column(UTCDateTime, nullable=False, default=clock.now, onupdate=clock.now)

    company = db.relationship("Company")
    connected_by = db.relationship("User")

    __table_args__ = (
        db.CheckConstraint("state IN ('ok', 'needs_login')", name="state_valid"),
        db.Index("ix_sage_token_remind_from_company", "remind_from", "company_id"),
    )


class AuditEvent(db.Model):
    """Something that happened to a company's Sage connection or settings: who, what, when."""

    __tablename__ = "audit_event"
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("company.id", ondelete="CASCADE"), nullable=False)
    at = db.Column(UTCDateTime, nullable=False, default=clock.now)
    actor_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    actor_name = db.Column(db.String(200), nullable=False)
    action = db.Column(db.String(40), nullable=False)
    detail = db.Column(db.String(1000), nullable=False, default="")

    __table_args__ = (db.Index("ix_audit_event_company_at", "company_id", "at"),)


class DeliveryStatus(str, enum.Enum):
    """Where one reminder is: claimed (to send), sending (SMTP under way), sent, failed, skipped at send time, or
    uncertain (handed to the mail server, answer never recorded: counted as sent, never re-sent)."""

    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNCERTAIN = "uncertain"


class ReminderDelivery(db.Model):
    """The reminder ledger: at most one row per (company, user, local day); see panel/reminders/plan.py."""

    __tablename__ = "reminder_delivery"
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("company.id", ondelete="CASCADE"), nullable=False)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    generation = db.Column(db.Integer, nullable=False)
    local_date = db.Column(db.Date, nullable=False)
    # The instant the local day began, in the zone in force when claimed: two zones' "same date" are two days.
    day_start = db.Column(UTCDateTime, nullable=False)
    status = db.Column(db.String(16), nullable=False, default=DeliveryStatus.CLAIMED.value)
    attempts = db.Column(db.Integer, nullable=False, default=0)
    claimed_at = db.Column(UTCDateTime, nullable=False, default=clock.now)
    sending_since = db.Column(UTCDateTime, nullable=True)
    # Set just before DATA: without it, a dead sender provably never handed the message over (safe to resend).
    data_at = db.Column(UTCDateTime, nullable=True)
    finished_at = db.Column(UTCDateTime, nullable=True)
    recipient = db.Column(db.String(254), nullable=True)
    reason = db.Column(db.String(500), nullable=True)

    __table_args__ = (
        db.UniqueConstraint("company_id", "user_id", "day_start", name="uq_reminder_delivery_day"),
        db.Index("ix_reminder_delivery_status", "status", "claimed_at"),
        db.Index("ix_reminder_delivery_company_date", "company_id", "local_date"),
        # A company's newest claim and newest hand-over (the widget's "Next reminder"), one index entry each.
        db.Index("ix_reminder_delivery_company_claimed", "company_id", "claimed_at"),
        db.Index("ix_reminder_delivery_company_data", "company_id", "data_at"),
        db.CheckConstraint("status IN ('claimed', 'sending', 'sent', 'failed', 'skipped', 'uncertain')",
                           name="status_valid"),
    )


class Heartbeat(db.Model):
    """When a scheduled task last completed (``reminder-sweep``): the scheduler's pulse, kept in the database
    because Redis, which the scheduler runs on, is the part whose failure it must reveal."""

    __tablename__ = "heartbeat"
    name = db.Column(db.String(40), primary_key=True)
    at = db.Column(UTCDateTime, nullable=False)
