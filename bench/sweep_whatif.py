"""What-if for benchmark 3: ``panel.reminders.ledger.claim`` as one executemany instead of one multi-VALUES INSERT.

NOT app code: the benchmark swaps this in for one clearly labelled series (``--what-if``) to measure the fix it
proposes. Same statement (INSERT … ON CONFLICT DO NOTHING RETURNING id), same rows, same commit; the only change is
that the rows go as a list of parameter sets, so SQLAlchemy's "insertmanyvalues" compiles the statement once (cached)
and sends it in pages that respect the driver's bind-parameter limit (SQLite 32766 or 999, psycopg 65535).
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Iterable


def claim_executemany(dues: Iterable, now: datetime) -> list[int]:
    """Drop-in for ledger.claim: insert a claimed row for each due reminder; ids of the rows created."""
    from panel.extensions import db
    from panel.models import DeliveryStatus as S
    from panel.models import ReminderDelivery as R
    from panel.reminders import ledger

    values = [{"company_id": d.company_id, "user_id": d.user_id, "generation": d.generation,
               "local_date": d.local_date, "day_start": d.day_start, "status": S.CLAIMED.value, "attempts": 0,
               "claimed_at": now} for d in dues]
    if not values:
        return []
    stmt = (ledger._insert()
            .on_conflict_do_nothing(index_elements=["company_id", "user_id", "day_start"])
            .returning(R.id))
    ids = list(db.session.scalars(stmt, values))
    db.session.commit()
    return ids


@contextmanager
def patched_claim():
    """Use claim_executemany in place of ledger.claim (the sweep calls it as ``ledger.claim``)."""
    from panel.reminders import ledger

    original = ledger.claim
    ledger.claim = claim_executemany
    try:
        yield
    finally:
        ledger.claim = original
