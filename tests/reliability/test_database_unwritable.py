"""Issue 10 item 5: a database that takes no writes — read-only, or full — answers 503 with "nothing was saved"
(never the generic 500), and nothing is half-saved. The conditions are real: SQLite opened read-only
(``mode=ro``) or held to its page limit (``max_page_count``, SQLite's own "database or disk is full"); PostgreSQL
with ``default_transaction_read_only``."""
from __future__ import annotations

import html
import sqlite3

import pytest
from sqlalchemy import event
from support import Session, make_app

from panel.extensions import db
from panel.models import AuditEvent, Company

DAYS = "/settings/sage/reminders/days"
MESSAGE = "so nothing was saved"


@pytest.fixture
def app(tmp_path, template_db, redis_server):
    return make_app(tmp_path, template_db, redis_server, shared_sql=False)  # make_read_only listens on the dialect


def sqlite_path(app) -> str | None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    return uri.removeprefix("sqlite:///") if uri.startswith("sqlite") else None


def make_read_only(app) -> None:
    """From now on the app's connections open the database read-only."""
    with app.app_context():
        engine = db.engine
        path = sqlite_path(app)
        if path:
            @event.listens_for(engine, "do_connect")
            def _read_only(dialect, conn_rec, cargs, cparams):
                return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            name = engine.url.database
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        engine.dispose()


def make_full(app) -> None:
    """Fill the SQLite file up to a page limit that every connection of the app then keeps."""
    path = sqlite_path(app)
    raw = sqlite3.connect(path)
    pages = raw.execute("PRAGMA page_count").fetchone()[0]
    raw.execute(f"PRAGMA max_page_count = {pages}")
    company_id = raw.execute("SELECT id FROM company LIMIT 1").fetchone()[0]
    for size in (500, 100, 20, 1):  # use up the free space left in the last pages, down to the smallest row
        try:
            while True:
                raw.execute("INSERT INTO audit_event (company_id, at, actor_name, action, detail) "
                            "VALUES (?, '2026-01-01 00:00:00', 'filler', 'filler', ?)", (company_id, "x" * size))
                raw.commit()
        except sqlite3.OperationalError as exc:
            assert "full" in str(exc)
            raw.rollback()
    raw.close()
    with app.app_context():
        @event.listens_for(db.engine, "connect")
        def _limit(dbapi_conn, conn_rec):
            dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")
        db.engine.dispose()


def state(app) -> tuple[int, int]:
    with app.app_context():
        db.session.remove()
        real = [e for e in AuditEvent.query.all() if e.action != "filler"]
        return Company.query.filter_by(name="Demo Ltd").one().reminder_days, len(real)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_database_that_takes_no_writes_answers_503_nothing_saved(app, fault, caplog):
    if fault == "full" and not sqlite_path(app):
        pytest.skip("a full disk can only be produced for SQLite here (its page limit)")
    admin = Session(app.test_client(), "admin@example.com")
    before = state(app)
    (make_read_only if fault == "read-only" else make_full)(app)
    with caplog.at_level("ERROR"):
        resp = admin.post(DAYS, data={"reminder_days": "14"})
    assert resp.status_code == 503, resp.text
    assert any(r.levelname == "ERROR" and "database refused a write" in r.getMessage() for r in caplog.records)
    assert MESSAGE in html.unescape(resp.text) and "Something went wrong" not in resp.text
    plain = admin.post(DAYS, htmx=False, data={"reminder_days": "14"})  # no JavaScript: the full page
    assert plain.status_code == 503 and MESSAGE in html.unescape(plain.text)
    # Pages still load (they only read), and nothing was saved or audited.
    assert admin.get("/settings/sage").status_code == 200
    assert state(app) == before
