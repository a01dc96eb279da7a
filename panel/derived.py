"""Tables the database keeps up to date itself, by triggers (see ``panel.triggers``); the app only reads them.

- ``poll_state``: a version per company ("c") and per user ("u"), raised in the same transaction as every change
  the token widget shows (token, settings, people, ledger outcomes) or that ends a session (a session row deleted, a
  password, role or active flag changed). The widget's ETag is made from these versions.
- ``company_tally``: how many people a company has, and how many of them get the reminder (active, switched on).
- ``ledger_day``: per company and local date, how many reminders were sent, failed and uncertain, when the last one finished
  and one failure's reason — the widget's "Last reminder" line without counting ledger rows.

Because triggers keep them, every writer is covered (web, worker, CLI, a bulk insert, an operator's SQL) and a
change and its version are committed together or not at all.
"""
from __future__ import annotations

from .extensions import db
from .models import UTCDateTime

COMPANY = "c"
USER = "u"


class PollState(db.Model):
    """One version per company or user, raised by triggers; ``changed_at`` is the database's clock (epoch s)."""

    __tablename__ = "poll_state"
    kind = db.Column(db.String(1), primary_key=True)
    ref_id = db.Column(db.Integer, primary_key=True, autoincrement=False)
    version = db.Column(db.Integer, nullable=False)
    changed_at = db.Column(db.Float, nullable=False, index=True)


class CompanyTally(db.Model):
    """A company's people and reminder recipients, counted by triggers on ``user``."""

    __tablename__ = "company_tally"
    company_id = db.Column(db.Integer, primary_key=True, autoincrement=False)
    people = db.Column(db.Integer, nullable=False, default=0)
    recipients = db.Column(db.Integer, nullable=False, default=0)


class LedgerDay(db.Model):
    """Sent, failed and uncertain reminders of one company on one local date, counted by triggers on the ledger."""

    __tablename__ = "ledger_day"
    company_id = db.Column(db.Integer, primary_key=True, autoincrement=False)
    local_date = db.Column(db.Date, primary_key=True)
    sent = db.Column(db.Integer, nullable=False, default=0)
    failed = db.Column(db.Integer, nullable=False, default=0)
    uncertain = db.Column(db.Integer, nullable=False, default=0)  # the server may have it; counted as sent
    last_at = db.Column(UTCDateTime, nullable=True)
    failure = db.Column(db.String(500), nullable=True)
