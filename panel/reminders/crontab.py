"""The rq cron schedule: ``rq cron -c panel.rqconfig … panel.reminders.crontab`` (Procfile, ``make run``).

``rq cron`` only enqueues, so the jobs are named by their dotted paths (``panel.reminders.schedule.sweep``, which the
worker imports) instead of imported: this process never loads the app — Flask, SQLAlchemy, the mail and Sage code
— and stays small (bench/RESULTS.md, benchmark 5). tests/test_lean_processes.py checks each name against the real job.

RQ's CronScheduler has no lock, so two cron processes enqueue every job twice; that wastes work but sends nothing
twice (each reminder is claimed in the ledger, each check by one UPDATE … RETURNING): production runs two, for
redundancy (docs/RELIABILITY.md, "Several hosts").
"""
from __future__ import annotations

import os
from typing import Callable

from rq import cron

from ..envvars import sweep_interval_minutes

INTERVAL_MINUTES = sweep_interval_minutes(os.environ)
SWEEP = "panel.reminders.schedule.sweep"
CHECKS = "panel.reminders.schedule.check_connections"


def by_name(path: str) -> Callable:
    """A stand-in for the job at dotted ``path``, for ``cron.register`` (which takes a function): RQ enqueues a
    function under ``module.qualname``, so the job it queues names ``path``, and the worker runs the real one."""
    module, _, name = path.rpartition(".")

    def stand_in(*_args, **_kwargs):
        raise RuntimeError(f"{path} runs in the worker; rq cron only enqueues it by name")

    stand_in.__module__, stand_in.__name__, stand_in.__qualname__ = module, name, name
    return stand_in


cron.register(by_name(SWEEP), queue_name="panel", interval=round(INTERVAL_MINUTES * 60), job_timeout=900,
              name="reminder-sweep")
# The daily connection checks (issue 15): each company once a day at its own slot; the tick finds those due.
cron.register(by_name(CHECKS), queue_name="panel", interval=round(INTERVAL_MINUTES * 60), job_timeout=900,
              name="connection-check")
