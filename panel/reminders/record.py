"""Recording a send in the ledger: the mark just before DATA (the one write that makes a sender the row's only
sender), and the answer after it, retried while the database refuses. See ledger.py for the row's states.

The per-message statements are Core, built once and executed with parameters: building them per message cost more
than running them.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import Company, SageToken, User, UTCDateTime
from ..models import DeliveryStatus as S
from ..models import ReminderDelivery as R
from .plan import MIN_GAP

log = logging.getLogger("panel.reminders.ledger")

HANDED_OVER = (S.SENDING.value, S.SENT.value, S.UNCERTAIN.value)  # with data_at set: DATA went to the server


def lease() -> timedelta:
    """How long a row may stay 'sending' (or untouched 'claimed') before it counts as abandoned."""
    return timedelta(seconds=current_app.config["PANEL_REMINDER_LEASE_SECONDS"])


_OTHER = aliased(R, name="other")  # once: building an alias per message cost more than the statement itself
_T = R.__table__  # the per-message statements below are Core, built once, executed with parameters


def _p(name: str, type_=None):
    return bindparam(f"p_{name}", type_=type_)  # "p_": a bind named like a column is reserved in UPDATE ... SET


def _mark_statement(expecting: bool):
    recent = exists().where(_OTHER.company_id == _p("company_id"), _OTHER.user_id == _p("user_id"),
                            _OTHER.id != _p("row_id"), _OTHER.status.in_(HANDED_OVER),
                            _OTHER.data_at > _p("since", UTCDateTime()))
    conditions = [_T.c.id == _p("row_id"), _T.c.status == S.CLAIMED.value, ~recent]
    if expecting:  # what the batch's re-check read is still true (see batch.Expect)
        conditions += [
            exists().where(User.id == _p("user_id"), User.company_id == _p("company_id"), User.active.is_(True),
                           User.notify_sage_token.is_(True)),
            exists().where(SageToken.company_id == _p("company_id"), SageToken.generation == _p("generation")),
            exists().where(Company.id == _p("company_id"), Company.timezone == _p("timezone"),
                           Company.reminder_hour == _p("reminder_hour"), Company.reminder_days == _p("reminder_days")),
        ]
    now = _p("now", UTCDateTime())
    return (update(_T).where(*conditions)
            .values(status=S.SENDING.value, data_at=now, sending_since=now, attempts=_T.c.attempts + 1,
                    recipient=_p("recipient")))


_MARK = {False: _mark_statement(False), True: _mark_statement(True)}
_LOCK_PERSON = select(User.id).where(User.id == _p("user_id")).with_for_update(key_share=True)


def mark_data(row_id: int, company_id: int, user_id: int, now: datetime, recipient: str, expect=None) -> bool:
    """Just before DATA: claimed -> sending, ``data_at`` = now, one more try. False (send nothing) when the row is no
    longer claimed (another sender has it, or it was handled) or another reminder went to the person within MIN_GAP
    — or, given ``expect`` (a ``batch.Expect``), when the recipient, the token or the company's reminder settings
    are no longer what the batch's re-check read.

    One statement, so only one sender ever marks a row, committed before DATA goes. On PostgreSQL the person's row
    is locked first, so two senders of two rows for one person (a timezone moved between claims) are serialized and
    the second sees the first's mark; SQLite runs one writer at a time, and one statement reads and writes under
    the same lock.
    """
    params = {"p_row_id": row_id, "p_company_id": company_id, "p_user_id": user_id, "p_now": now,
              "p_since": now - MIN_GAP, "p_recipient": recipient[:254]}
    if expect is not None:
        params.update(p_generation=expect.generation, p_timezone=expect.timezone,
                      p_reminder_hour=expect.reminder_hour, p_reminder_days=expect.reminder_days)
    conn = db.session.connection()
    if db.engine.dialect.name == "postgresql":
        conn.execute(_LOCK_PERSON, {"p_user_id": user_id})
    result = conn.execute(_MARK[expect is not None], params)
    db.session.commit()
    return result.rowcount == 1


def status_of(row_id: int) -> str | None:
    """The row's status as stored now."""
    return db.session.execute(select(R.status).where(R.id == row_id)).scalar_one_or_none()


def _written(stmt, what: str, params=None, *, alone: bool = False) -> bool:
    """Execute ``stmt`` (``params``: a dict, or a list for many rows) and commit, trying again with backoff while
    the database refuses (locked, busy, connection lost, read-only, full), for up to the lease. False when it never
    got through. ``alone``: one statement committed by itself (autocommit), without BEGIN and COMMIT round trips."""
    deadline = time.monotonic() + lease().total_seconds()
    pause = 0.1
    while True:
        try:
            if alone:
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(stmt, params)
            else:
                db.session.connection().execute(stmt, params)
                db.session.commit()
            return True
        except (IntegrityError, ProgrammingError, DataError):
            raise  # a bug, not a fault of the moment
        except DBAPIError as exc:
            db.session.rollback()
            if time.monotonic() + pause >= deadline:
                log.error("could not record %s for %s s (%s); the row stays 'sending' and becomes 'uncertain' "
                          "after the lease", what, int(lease().total_seconds()), getattr(exc, "orig", exc))
                return False
            log.warning("could not record %s yet (%s); trying again in %.1f s", what, getattr(exc, "orig", exc), pause)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


_SENT = (update(_T).where(_T.c.id == _p("row_id"), _T.c.status.in_([S.SENDING.value, S.UNCERTAIN.value]))
         .values(status=S.SENT.value, finished_at=_p("now", UTCDateTime()), reason=None, recipient=_p("recipient")))
_SKIP = (update(_T).where(_T.c.id == _p("row_id"), _T.c.status == S.CLAIMED.value)
         .values(status=S.SKIPPED.value, finished_at=_p("now", UTCDateTime()), reason=_p("reason")))


def sent(row_id: int, now: datetime, recipient: str) -> bool:
    """The server accepted the message: 'sending' (or an 'uncertain' the sweep gave it meanwhile) -> 'sent'.
    Retried until written, for up to the lease; False when it never got through. Committed (one statement, on its
    own) before the next message starts, so a worker that dies later leaves this row 'sent'."""
    return _written(_SENT, f"reminder {row_id} as sent", {"p_row_id": row_id, "p_now": now,
                                                           "p_recipient": recipient[:254]}, alone=True)


def skip_many(skips: list[tuple[int, str]], now: datetime) -> bool:
    """Rows (id, reason) the re-check stopped before anything was sent: 'claimed' -> 'skipped', in one commit."""
    if not skips:
        return True
    return _written(_SKIP, f"{len(skips)} skipped reminders", [{"p_row_id": row_id, "p_now": now,
                                                                "p_reason": reason[:500]} for row_id, reason in skips])


def finish(row_id: int, status: S, now: datetime, recipient: str | None = None, reason: str | None = None, *,
           marked: bool = True, tried: bool = False) -> bool:
    """Record how a row ended — ``marked``: after DATA (from 'sending'; a late 'sent' also replaces an 'uncertain'
    the sweep gave it meanwhile), else before it (from 'claimed'; ``tried`` counts one more try). Retried until
    written, for up to the lease; False when it never got through."""
    if marked:
        states = [S.SENDING.value] + ([S.UNCERTAIN.value] if status is S.SENT else [])
    else:
        states = [S.CLAIMED.value]
    values = {"status": status.value, "finished_at": now, "reason": (reason or None) and reason[:500]}
    if recipient:
        values["recipient"] = recipient[:254]
    if tried:
        values["attempts"] = _T.c.attempts + 1
    stmt = update(_T).where(_T.c.id == row_id, _T.c.status.in_(states)).values(**values)
    return _written(stmt, f"reminder {row_id} as {status.value}")


def release(row_id: int, now: datetime, reason: str, *, marked: bool) -> None:
    """A transient failure; the row is claimed again, to be retried (RQ Retry, or the next sweep after the lease).
    ``marked``: the server refused the DATA (a definite 4xx), so the mark is undone; else a try that never reached
    DATA is counted."""
    if marked:
        stmt = (update(R).where(R.id == row_id, R.status == S.SENDING.value)
                .values(status=S.CLAIMED.value, data_at=None, sending_since=now, reason=reason[:500]))
    else:
        stmt = (update(R).where(R.id == row_id, R.status == S.CLAIMED.value)
                .values(attempts=R.attempts + 1, sending_since=now, reason=reason[:500]))
    db.session.execute(stmt)
    db.session.commit()


