"""One send batch, read at once: its ledger rows, recipients, companies, tokens and the admins to name in five
queries, and the re-check of each reminder against them — so sending one message costs no reads.

What the re-check read is verified again, atomically, by the DATA mark (``ledger.mark_data``'s ``expect``): a
recipient switched off, a token renewed or a setting changed after the batch was read stops that message there.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select

from ..extensions import db
from ..models import Company, ReminderDelivery, Role, SageToken, User
from ..models import DeliveryStatus as S
from ..sage import store
from .plan import CompanyPlan, company_is_due, local_date
from .recipients import ADMINS_NAMED, Admins


@dataclass(frozen=True)
class Row:
    """A ledger row as the batch read it."""

    id: int
    company_id: int
    user_id: int
    generation: int
    local_date: date
    status: str
    attempts: int


@dataclass(frozen=True)
class Expect:
    """What the re-check relied on, for the DATA mark to verify in the same statement (see ``ledger.mark_data``)."""

    generation: int
    timezone: str
    reminder_hour: int
    reminder_days: int


def why_not(row, user: User | None, company: Company | None, token: SageToken | None, now: datetime) -> str | None:
    """Why this reminder must not go now, or None when it should (pure: on what was read)."""
    if user is None or not user.active:
        return "recipient is inactive"
    if not user.notify_sage_token or user.company_id != row.company_id:
        return "recipient switched reminders off"
    if token is None or company is None:
        return "Sage was disconnected"
    if token.generation != row.generation:
        return "the token was renewed"
    plan = CompanyPlan(company.id, company.timezone, company.reminder_hour, company.reminder_days,
                       token.generation, token.expires_at)
    if local_date(now, company.timezone) != row.local_date:
        return "that day is over (today's reminder is claimed separately)"
    if not company_is_due(now, plan):
        return "no longer due (reminder settings changed)"
    return None


def why_not_now(row, now: datetime) -> str | None:
    """The same re-check on what the database holds now (after a DATA mark was refused)."""
    user = db.session.get(User, row.user_id, populate_existing=True)
    company = db.session.get(Company, row.company_id, populate_existing=True)
    return why_not(row, user, company, store.current(row.company_id), now)


class Batch:
    """The rows ``ids`` (in that order, missing ones left out) and everything sending them needs.

    Read as plain rows, not ORM objects: every commit (one per DATA mark) would expire those and reload them.
    """

    def __init__(self, ids: list[int]):
        R = ReminderDelivery  # noqa: N806 - the model, as in ledger.py
        found = {r.id: Row(*r) for r in db.session.execute(
            select(R.id, R.company_id, R.user_id, R.generation, R.local_date, R.status, R.attempts)
            .where(R.id.in_(ids)))}
        self.rows = [found[i] for i in dict.fromkeys(ids) if i in found]
        user_ids = {r.user_id for r in self.rows}
        company_ids = {r.company_id for r in self.rows}
        self.users = {u.id: u for u in _read(
            select(User.id, User.company_id, User.email, User.name, User.active, User.notify_sage_token,
                   (User.role == Role.ADMIN.value).label("is_admin")), User.id, user_ids)}
        self.companies = {c.id: c for c in _read(
            select(Company.id, Company.name, Company.timezone, Company.reminder_days, Company.reminder_hour),
            Company.id, company_ids)}
        self.tokens = {t.company_id: t for t in _read(
            select(SageToken.company_id, SageToken.generation, SageToken.expires_at, SageToken.consented_at,
                   SageToken.connected_by_name, SageToken.state, SageToken.state_reason),
            SageToken.company_id, company_ids)}
        asking = {u.company_id for u in self.users.values() if not u.is_admin and u.company_id in company_ids}
        self.admins = admins_of(sorted(asking))

    def claimed(self) -> list[Row]:
        """The rows still claimed when read (the others were handled, or handed over to another sender)."""
        return [r for r in self.rows if r.status == S.CLAIMED.value]

    def why_not(self, row: Row, now: datetime) -> str | None:
        """The re-check of ``row`` on what the batch read, at ``now``."""
        return why_not(row, self.users.get(row.user_id), self.companies.get(row.company_id),
                       self.tokens.get(row.company_id), now)

    def expect(self, row: Row) -> Expect:
        """What the DATA mark must find unchanged for ``row`` (call after ``why_not`` said None)."""
        company = self.companies[row.company_id]
        return Expect(row.generation, company.timezone, company.reminder_hour, company.reminder_days)


def _read(stmt, key, values: set[int]) -> list:
    return db.session.execute(stmt.where(key.in_(values))).all() if values else []


def admins_of(company_ids: list[int], limit: int = ADMINS_NAMED) -> dict[int, Admins]:
    """``recipients.admins`` for many companies in one query: active admins in name order, the first ``limit``
    named and the rest counted (never more than ``limit`` rows read per company)."""
    if not company_ids:
        return {}
    ranked = (select(User.company_id, User.name, User.email,
                     func.row_number().over(partition_by=User.company_id,
                                            order_by=(func.lower(User.name), User.id)).label("rank"),
                     func.count().over(partition_by=User.company_id).label("total"))
              .where(User.company_id.in_(company_ids), User.role == Role.ADMIN.value, User.active.is_(True))
              .subquery())
    rows = db.session.execute(select(ranked).where(ranked.c.rank <= limit)
                              .order_by(ranked.c.company_id, ranked.c.rank)).all()
    named: dict[int, list[tuple[str, str]]] = {c: [] for c in company_ids}
    totals: dict[int, int] = {}
    for company_id, name, email, _rank, total in rows:
        named[company_id].append((name, email))
        totals[company_id] = total
    return {c: Admins(tuple(people), totals.get(c, 0) - len(people)) for c, people in named.items()}
