"""The daily connection checks' background work. Every tick (RQ cron, every PANEL_SWEEP_INTERVAL_MINUTES) gives new
companies their slot, claims the checks that are due and runs them in small batches; each check's outcome is
stored, and an incident it opens or closes has its alert or recovery messages claimed and sent at once.
"""
from __future__ import annotations

from flask import current_app

from .. import clock, events
from ..jobs import enqueue
from ..localtime import plural
from ..sage import check, check_state, store
from . import alerts, notice_send

CHECK_BATCH = 5  # companies per job: each check may wait for Sage (SAGE_HTTP_TIMEOUT per call, plus retries)
CHECK_JOB = "panel.reminders.schedule.check_batch"


def pauses() -> list[float]:
    """Seconds to wait before each retry of a transient failure within one check (PANEL_CHECK_RETRY_SECONDS)."""
    return list(current_app.config.get("PANEL_CHECK_RETRY_SECONDS") or [])


def check_one(company_id: int) -> str:
    """Check one company now, store the outcome, and send any alert it calls for; returns the outcome's kind."""
    token = store.current(company_id)
    if token is None:
        return "skipped"  # disconnected since the tick claimed it: a deliberate Disconnect is no incident
    generation = token.generation
    outcome = check.run(company_id, pauses())
    check_state.record(company_id, outcome, generation, clock.now())
    events.emit(events.CONNECTION_CHECKED, company_id=company_id, outcome=outcome.kind.value,
                reason=outcome.reason or None)
    send_alerts(company_id)
    return outcome.kind.value


def send_alerts(company_id: int | None = None) -> int:
    """Claim and send the alert or recovery messages not claimed yet (of one company, or all); returns how many."""
    count = 0
    for cid, kind, incident in check_state.pending_alerts(company_id):
        ids = alerts.claim_pending(cid, kind, incident, clock.now())
        notice_send.send(ids)
        count += len(ids)
    return count


def check_batch(company_ids: list[int]) -> dict:
    """Run the claimed checks of ``company_ids``, one after another."""
    counts: dict[str, int] = {}
    for company_id in company_ids:
        kind = check_one(company_id)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def tick(inline: bool = False) -> dict:
    """Claim the checks that are due and run them (queued in batches, or here when ``inline``)."""
    now = clock.now()
    added = check_state.add_missing(now)
    check_state.recheck_renewed(now)
    due = check_state.claim_due(now)
    alerted = send_alerts()  # left unclaimed by a worker that died between a check and its alerts
    batches = [due[i:i + CHECK_BATCH] for i in range(0, len(due), CHECK_BATCH)]
    summary = {"added": added, "due": len(due), "batches": len(batches), "alerts": alerted}
    for batch in batches:
        if inline:
            for kind, n in check_batch(batch).items():
                summary[kind] = summary.get(kind, 0) + n
        else:
            enqueue(CHECK_JOB, batch, job_timeout=1800,
                    description=f"check the Sage connection of {plural(len(batch), 'company', 'companies')}")
    return summary
