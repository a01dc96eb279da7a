"""The RQ cron configuration: ``rq cron panel.reminders.schedule`` enqueues the reminder sweep periodically.

Run exactly one cron process per deployment. RQ's CronScheduler has no lock, so two would enqueue every sweep
twice; that wastes work but sends nothing twice, because each reminder is claimed in the ledger first.
"""
from __future__ import annotations

import os

from rq import cron

from .jobs import sweep

INTERVAL_MINUTES = int(os.environ.get("PANEL_SWEEP_INTERVAL_MINUTES", "15") or 15)

cron.register(sweep, queue_name="panel", interval=INTERVAL_MINUTES * 60, job_timeout=900, name="reminder-sweep")
