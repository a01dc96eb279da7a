"""Notification recipients: who gets the reminder, searched and paginated in SQL, switched one by one; and the
company's admins, whom everyone else is told to ask."""
from __future__ import annotations

from dataclasses import dataclass

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import func, or_, select, update

from .. import audit, events
from ..audit import Action
from ..busy import retrying
from ..derived import CompanyTally
from ..extensions import db
from ..models import Role, User

PER_PAGE = 25
MAX_QUERY = 100
ADMINS_NAMED = 5  # emails and the widget name this many admins, then say how many more there are


@dataclass(frozen=True)
class Admins:
    """The company's active admins as emails and the widget name them: ``named`` (name, email) and how many more."""

    named: tuple[tuple[str, str], ...]
    more: int = 0


def clean_query(raw: str | None) -> str:
    """The search text as used: trimmed, bounded, without control characters."""
    text = "".join(c for c in (raw or "") if c.isprintable())
    return text.strip()[:MAX_QUERY]


def page_number(raw: str | None) -> int:
    """A page number from the query string; anything odd means page 1."""
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 7 and int(raw) > 0 else 1


def _escape(text: str) -> str:
    # LIKE wildcards typed by the person are searched for literally.
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find(company_id: int, query: str = "", page: int = 1, per_page: int = PER_PAGE) -> Pagination:
    """The ``page``-th page of the company's users matching ``query`` (name or email), in name order.

    A page past the end shows the last page, so a stale link after people were removed still shows someone.
    """
    conditions = [User.company_id == company_id]
    if query:
        pattern = f"%{_escape(query.lower())}%"
        conditions.append(or_(func.lower(User.name).like(pattern, escape="\\"),
                              func.lower(User.email).like(pattern, escape="\\")))
    stmt = select(User).where(*conditions).order_by(func.lower(User.name), User.id)
    found = db.paginate(stmt, page=max(1, page), per_page=per_page, error_out=False)
    if found.page > 1 and found.page > found.pages:
        found = db.paginate(stmt, page=max(1, found.pages), per_page=per_page, error_out=False)
    return found


def count(company_id: int) -> int:
    """How many people will be emailed: active users with the switch on (the tally triggers keep; one row)."""
    return db.session.execute(
        select(CompanyTally.recipients).where(CompanyTally.company_id == company_id)).scalar() or 0


def admins(company_id: int, limit: int = ADMINS_NAMED) -> Admins:
    """The company's active admins, in name order: the first ``limit`` named, the rest counted."""
    rows = db.session.execute(
        select(User.name, User.email).where(User.company_id == company_id, User.role == Role.ADMIN.value,
                                            User.active.is_(True))
        .order_by(func.lower(User.name), User.id).limit(limit + 1)).all()
    if len(rows) <= limit:
        return Admins(tuple((name, email) for name, email in rows))
    total = db.session.execute(
        select(func.count(User.id)).where(User.company_id == company_id, User.role == Role.ADMIN.value,
                                           User.active.is_(True))).scalar_one()
    return Admins(tuple((name, email) for name, email in rows[:limit]), total - limit)


@retrying
def switch(person: User, on: bool, actor, *, action: Action = Action.RECIPIENT_CHANGED, how: str = "") -> bool:
    """Set ``person``'s reminder switch atomically; audits and returns True only when it changed."""
    result = db.session.execute(
        update(User).where(User.id == person.id, User.notify_sage_token.is_(not on))
        .values(notify_sage_token=on).execution_options(synchronize_session=False)
    )
    changed = result.rowcount == 1
    if changed:
        audit.record(person.company_id, action, f"{person.name}: {'off → on' if on else 'on → off'}{how}",
                     actor=actor, actor_name=None if actor is not None else person.name)
    db.session.commit()
    if changed:
        events.emit(events.SETTING_CHANGED, company_id=person.company_id, actor_id=getattr(actor, "id", None),
                    setting="notify_sage_token", user_id=person.id, old=not on, new=on, via=action.value)
    db.session.refresh(person)
    return changed
