"""Request logs never keep the Sage ID callback's code/state or an unsubscribe token: gunicorn's access log (a real
gunicorn with the panel's logger class) and the werkzeug development server's log."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from support import base_env, free_port, make_app

from panel.logs import scrub as redact

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
SECRETS = ("SECRETCODE", "SECRETSTATE", "SECRETTOKEN", "SECRETREFERRER")


@pytest.mark.parametrize("line, expected", [
    ("GET /settings/sage/callback?code=SECRETCODE&state=SECRETSTATE HTTP/1.1",
     "GET /settings/sage/callback?code=[redacted]&state=[redacted] HTTP/1.1"),
    ("code=SECRETCODE&state=SECRETSTATE", "code=[redacted]&state=[redacted]"),
    ("/login?next=%2Fsettings%2Fsage%2Fcallback%3Fcode%3DSECRETCODE%26state%3DSECRETSTATE",
     "/login?next=%2Fsettings%2Fsage%2Fcallback%3Fcode%3D[redacted]%26state%3D[redacted]"),
    ("POST /unsubscribe/SECRETTOKEN.abc-def HTTP/1.1", "POST /unsubscribe/[redacted] HTTP/1.1"),
    ("GET /demo-sageid/authorize?response_type=code&state=SECRETSTATE&code_challenge=abc",
     "GET /demo-sageid/authorize?response_type=code&state=[redacted]&code_challenge=abc"),
    ("GET /settings/sage?error_code=1&codes=2 HTTP/1.1", "GET /settings/sage?error_code=1&codes=2 HTTP/1.1"),
])
def test_redact(line, expected):
    assert redact(line) == expected


def hit_secret_urls(base: str) -> None:
    """The requests whose URLs carry secrets: a callback (signed out, so also its next= redirect), unsubscribe."""
    http = requests.Session()
    http.get(f"{base}/settings/sage/callback?code=SECRETCODE&state=SECRETSTATE",
             headers={"Referer": f"{base}/x?code=SECRETREFERRER"}, timeout=30)
    http.get(f"{base}/unsubscribe/SECRETTOKEN", timeout=30)
    http.post(f"{base}/unsubscribe/SECRETTOKEN", timeout=30)


def test_gunicorn_access_and_error_logs_are_redacted(tmp_path, template_db, redis_server):
    app = make_app(tmp_path, template_db, redis_server)
    port = free_port()
    env = dict(os.environ)
    env.update(base_env(), PANEL_INSTANCE_PATH=app.instance_path, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=redis_server, PANEL_BASE_URL=f"http://127.0.0.1:{port}")
    output = tmp_path / "gunicorn.log"
    # As the Procfile starts it: the panel's gunicorn settings, every line (access and error) on stderr.
    with open(output, "wb") as sink:
        proc = subprocess.Popen([GUNICORN, "-c", "python:panel.weblog", "--bind", f"127.0.0.1:{port}", "--workers",
                                 "1", "--no-control-socket", "wsgi:app"], env=env, cwd=ROOT, stdout=sink, stderr=sink)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/login", timeout=10)
                break
            except requests.RequestException:
                assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not come up"
                time.sleep(0.1)
        hit_secret_urls(base)
    finally:
        proc.terminate()
        proc.wait(20)
    log = output.read_text()
    assert "GET /settings/sage/callback?code=[redacted]&state=[redacted]" in log
    assert "POST /unsubscribe/[redacted]" in log and "code%3D[redacted]%26state%3D[redacted]" in log
    assert not [s for s in SECRETS if s in log], log  # the referrer is not logged at all


def test_development_server_log_is_redacted(live_server, caplog, monkeypatch):
    # Alembic's fileConfig (the template database's migrations) disables loggers that existed before it ran.
    monkeypatch.setattr(logging.getLogger("werkzeug"), "disabled", False)
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        hit_secret_urls(live_server.url)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/settings/sage/callback?code=[redacted]&state=[redacted]" in line for line in lines), lines
    assert any("/unsubscribe/[redacted]" in line for line in lines), lines
    assert not [s for s in SECRETS if any(s in line for line in lines)], lines


def test_procfile_web_uses_the_panels_gunicorn_settings():
    web = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")]
    assert len(web) == 1 and "-c python:panel.weblog" in web[0]
