"""The demo account's connected apps: its live grants (one per consent), and revoking one — the way a person
withdraws the panel's access in Sage ID, after which the panel's next refresh gets ``invalid_grant``."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from .. import clock
from ..extensions import db
from .models import DemoToken, revoke_family


@dataclass(frozen=True)
class Grant:
    """One consent still in force."""

    family_id: str
    consented_at: datetime
    grant_expires_at: datetime


def active_grants(account: str) -> list[Grant]:
    """The account's consents with an unrevoked token that has not reached its absolute end, newest first."""
    rows = db.session.execute(
        select(DemoToken.family_id, func.min(DemoToken.consented_at), func.max(DemoToken.grant_expires_at))
        .where(DemoToken.account == account, DemoToken.revoked_at.is_(None),
               DemoToken.grant_expires_at > clock.now())
        .group_by(DemoToken.family_id).order_by(func.min(DemoToken.consented_at).desc()))
    return [Grant(*row) for row in rows]


def revoke_grant(account: str, family_id: str) -> bool:
    """Revoke every token of one of the account's consents; False when it is not one of theirs (or already gone)."""
    mine = db.session.scalar(select(func.count()).where(DemoToken.account == account,
                                                        DemoToken.family_id == family_id,
                                                        DemoToken.revoked_at.is_(None)))
    return bool(mine) and revoke_family(family_id, clock.now()) > 0
