"""RQ on the embedded Redis: a real worker process runs a job that reaches the database."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from panel.jobs import QueueUnavailable, enqueue

ROOT = Path(__file__).resolve().parent.parent


def worker_env(app) -> dict:
    """Environment under which a worker process sees the same database and Redis as ``app``."""
    from support import base_env

    env = dict(os.environ)
    env.update(base_env())
    env.update(PANEL_INSTANCE_PATH=app.instance_path, REDIS_URL=app.config["REDIS_URL"],
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"])
    return env


def test_job_runs_on_a_real_worker(app):
    with app.app_context():
        job = enqueue("panel.jobs.ping", "hello")
    rq = Path(sys.executable).parent / "rq"
    done = subprocess.run([str(rq), "worker", "--burst", "-w", "panel.jobs.PanelWorker",
                           "--url", app.config["REDIS_URL"], "panel"],
                          env=worker_env(app), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    job.refresh()
    assert job.get_status() == "finished", done.stderr
    result = job.return_value()
    assert result["token"] == "hello"
    assert result["users"] == 5  # the seeded database, seen from the worker process
    assert result["pid"] != os.getpid()


def test_enqueue_reports_redis_down(app):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("panel_redis", None)
    with app.app_context():
        try:
            enqueue("panel.jobs.ping", "x")
        except QueueUnavailable:
            pass
        else:
            raise AssertionError("enqueue should have failed with Redis down")
