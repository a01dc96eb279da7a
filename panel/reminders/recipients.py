"""Notification recipients: how many get the reminder, the search text and page number as typed, the switch one
by one; and the company's admins, whom everyone else is told to ask. (The list itself: ``people``.)"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update

from .. import audit, events
from ..audit import Action
from ..busy import retrying
from ..derived import CompanyTally
from ..extensions import db
from ..models import Role, User

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


def person_id(raw: str | None) -> int | None:
    """A person's id from the query string (a page link's boundary); anything odd means none."""
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 12 else None


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
