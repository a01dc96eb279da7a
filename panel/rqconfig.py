"""Settings module for ``rq worker -c panel.rqconfig`` and ``rq cron -c panel.rqconfig``: importing it puts
rq's own log lines in the panel's one format before rq sets up handlers of its own (the worker would also get it
when PanelWorker builds the app, but ``rq cron`` never builds one). Their Redis client is
``--connection-class panel.rqredis.PatientRedis``."""
from __future__ import annotations

from .logs import configure

configure()
