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

from sqlalchemy import text
from sqlalchemy.engine import Connection

from .extensions import db
from .models import UTCDateTime
from .triggers import DONE, SEARCH_SQLITE, has_search_index

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


def backfill(bind: Connection) -> None:
    """Fill the tallies, ledger days and search index from the rows already there (the triggers keep them after)."""
    bind.execute(text("DELETE FROM company_tally"))
    bind.execute(text('INSERT INTO company_tally (company_id, people, recipients) SELECT company_id, count(*), '
                      'sum(CASE WHEN active AND notify_sage_token THEN 1 ELSE 0 END) FROM "user" GROUP BY company_id'))
    bind.execute(text("DELETE FROM ledger_day"))
    bind.execute(text(
        "INSERT INTO ledger_day (company_id, local_date, sent, failed, uncertain, last_at, failure) "
        "SELECT company_id, local_date, sum(CASE WHEN status = 'sent' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), sum(CASE WHEN status = 'uncertain' THEN 1 ELSE 0 END), "
        "max(finished_at), "
        f"min(CASE WHEN status = 'failed' THEN reason END) FROM reminder_delivery WHERE status IN {DONE} "
        "GROUP BY company_id, local_date"))
    if has_search_index(bind):
        bind.execute(text("INSERT INTO user_search (user_search) VALUES ('delete-all')"))
        bind.execute(text(f'INSERT INTO user_search (rowid, search) SELECT id, {SEARCH_SQLITE.format(r="u")} '
                          'FROM "user" u'))
