"""The company's reminder settings: one table describing each, and an atomic, audited save per field."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select, update

from .. import audit, events
from ..audit import Action
from ..busy import retrying
from ..extensions import db
from ..models import Company
from ..sage.store import sync_remind_from
from . import parsing

ATTEMPTS = 10  # compare-and-swap retries; each retry means another admin saved the same field in between


@dataclass(frozen=True)
class Setting:
    """One reminder setting: its key in URLs, its Company column (also the form field), label, parser, partial."""

    key: str
    column: str
    label: str
    parse: Callable[[list[str]], parsing.Parsed]
    partial: str
    moves_window: bool  # changing it moves the token's reminder window (the sweep reads the window)

    def show(self, value) -> str:
        """The value as people read it in the audit list and the field."""
        return f"{value:02d}:00" if self.column == "reminder_hour" else str(value)

    def text(self, company: Company) -> str:
        """What the field shows for ``company``'s saved value."""
        return str(getattr(company, self.column))


SETTINGS = {s.key: s for s in (
    Setting("days", "reminder_days", "Reminder days", parsing.reminder_days, "settings/_reminder_days.html", True),
    Setting("hour", "reminder_hour", "Send at hour", parsing.reminder_hour, "settings/_reminder_hour.html", False),
    Setting("timezone", "timezone", "Timezone", parsing.timezone, "settings/_reminder_timezone.html", True),
)}


class SettingConflict(RuntimeError):
    """The field kept changing under us; nothing was saved."""


@retrying
def save(company_id: int, setting: Setting, new, actor) -> tuple[object, bool]:
    """Set ``setting`` to ``new``; returns (old value, changed). Last write wins; every change is audited.

    One transaction: the value, its audit event and the token's reminder window are saved together or not at all
    (a busy database is retried, then raises DatabaseBusy).
    """
    column = getattr(Company, setting.column)
    for _ in range(ATTEMPTS):
        old = db.session.execute(select(column).where(Company.id == company_id)).scalar_one()
        if old == new:
            db.session.rollback()  # end the read; nothing to write
            return old, False
        # Only writes if nobody changed the field since we read it, so the audit's "old" is exactly right.
        result = db.session.execute(
            update(Company).where(Company.id == company_id, column == old).values({setting.column: new})
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            audit.record(company_id, Action.SETTING_CHANGED,
                         f"{setting.label}: {setting.show(old)} → {setting.show(new)}", actor=actor)
            if setting.moves_window:
                sync_remind_from(company_id, commit=False)
            db.session.commit()
            events.emit(events.SETTING_CHANGED, company_id=company_id, actor_id=getattr(actor, "id", None),
                        setting=setting.column, old=old, new=new)
            company = db.session.get(Company, company_id)
            if company is not None:
                db.session.refresh(company)
            return old, True
        db.session.rollback()
    raise SettingConflict(setting.column)
