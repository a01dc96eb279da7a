"""Helpers shared by the tests: environment, app factory on a seeded copy, signed-in sessions."""
from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import socket
import threading
from datetime import timedelta

from rq import SimpleWorker
from sqlalchemy import select
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from compile_once import STATEMENTS, TEMPLATES
from panel import clock, create_app
from panel.extensions import db
from panel.models import Company, User
from panel.redis_conn import get_redis
from panel.sage import store

PASSWORD = "correct horse battery"
# Seeded users get a one-iteration hash, as flaskr's test data does: a sign-in then costs microseconds, not the
# ~0.23 s of scrypt. The product's own hashing (scrypt) is still what set_password uses, and it is tested once.
CHEAP_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1")

# Two companies so every test can try to cross the line between them.
SEED = {
    "Demo Ltd": [("Alice Admin", "admin@example.com", "admin", True),
                 ("Ben Hughes", "ben@example.com", "user", False),
                 ("Chloe Patel", "chloe@example.com", "user", True)],
    "Other Co": [("Olga Other", "olga@other.example", "admin", True),
                 ("Oscar Other", "oscar@other.example", "user", True)],
}


def base_env(**extra) -> dict:
    """A clean, explicit environment so a developer's own variables never leak into tests."""
    # A random SECRET_KEY (secrets.token_urlsafe(48)), so production-mode tests pass the guessability check.
    env = {"PANEL_ENV": "development", "SECRET_KEY": "edtZJiIMZQIvL7GK7b7RD3_985-MXJ9GL8y1znOojEaIY8oe9DbLfeQzHcqayPRn",
           "PANEL_ENCRYPTION_KEYS": "4pQZGKTO0f31V3XK9I_P-XkMUkrD8e-EPEXqGQuBioU=",
           "PANEL_DEMO_PASSWORD": PASSWORD}
    env.update(extra)
    return env


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# PostgreSQL instead of SQLite: a server URL whose user may create databases, e.g.
# postgresql://postgres@127.0.0.1:5432/postgres (.ci/run starts a private cluster and sets it).
PG_ENV = "PANEL_TEST_DATABASE_URL"


def postgres_url() -> str:
    """The PostgreSQL server the tests should use, or "" for SQLite."""
    return os.environ.get(PG_ENV, "").strip()


class PostgresTemplate:
    """A migrated, seeded PostgreSQL database that each test clones (CREATE DATABASE … TEMPLATE …)."""

    _numbers = itertools.count(1)
    current: "PostgresTemplate | None" = None  # the session's template (conftest drops its clones after each test)

    def __init__(self, server_url: str):
        from sqlalchemy.engine import make_url

        self.server = make_url(server_url).set(drivername="postgresql")
        self.name = f"panel_template_{os.getpid()}"
        self.created: list[str] = []  # databases cloned since the last drop_clones()
        self._conn = None  # one autocommit connection to the server's maintenance database
        PostgresTemplate.current = self

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on the test server (psycopg 3 driver)."""
        return self.server.set(drivername="postgresql+psycopg", database=database).render_as_string(False)

    def _admin(self, sql: str) -> None:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.server.render_as_string(False), autocommit=True)
        self._conn.execute(sql)

    def create_empty(self) -> str:
        """(Re)create the template database, empty; returns its URL."""
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self.url(self.name)

    def clone(self) -> str:
        """A fresh copy of the template for one app; returns its URL."""
        name = f"panel_test_{os.getpid()}_{next(self._numbers)}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}" STRATEGY FILE_COPY')
        self.created.append(name)
        return self.url(name)

    def drop_clones(self) -> None:
        """Drop the copies made so far (their apps' pooled connections are closed by FORCE)."""
        while self.created:
            self._admin(f'DROP DATABASE IF EXISTS "{self.created.pop()}" WITH (FORCE)')

    def drop(self) -> None:
        """Drop the clones and the template itself."""
        self.drop_clones()
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._conn.close()
        PostgresTemplate.current = None


def database_uri(inst, template_db) -> str:
    """A fresh database for one app: a copy of the SQLite template file, or a clone of the PostgreSQL template."""
    if isinstance(template_db, PostgresTemplate):
        return template_db.clone()
    db_path = inst / "panel.sqlite3"
    shutil.copy(template_db, db_path)
    return f"sqlite:///{db_path}"


def make_app(tmp_path, template_db, redis_server, *, shared_sql: bool = True, **config):
    """A fresh app on its own copy of the seeded database (SQLite file, or PostgreSQL clone).

    ``shared_sql=False`` keeps the engine's own dialect: a test that listens for dialect events (``do_connect``)
    on its engine needs that, or its listener would land on the dialect every later engine shares.
    """
    inst = tmp_path / "instance"
    inst.mkdir(exist_ok=True)
    cfg = {"INSTANCE_PATH": str(inst), "ENV_VARS": base_env(), "TESTING": True,
           "SQLALCHEMY_DATABASE_URI": database_uri(inst, template_db), "REDIS_URL": redis_server}
    cfg.update(config)
    app = create_app(cfg)
    app.jinja_env.bytecode_cache = TEMPLATES
    if shared_sql:
        STATEMENTS.share(app)
    return app


def connect_sage(company: str = "Demo Ltd", *, at=None, lifetime=None, expires_at=None, access_seconds: int = 480):
    """Store a Sage token as if the company's admin had clicked Login Now at ``at`` (default: now).

    ``lifetime`` (a timedelta), or ``expires_at``, says when the token expires, as Sage ID's
    ``refresh_token_expires_in`` would; without either, SAGE_TOKEN_LIFETIME_DAYS applies. The access token lasts
    ``access_seconds``. Runs in the current app context and returns the stored token.
    """
    firm = db.session.execute(select(Company).filter_by(name=company)).scalar_one()
    admin = db.session.execute(select(User).filter_by(company_id=firm.id, role="admin").order_by(User.id)).scalars().first()
    if expires_at is not None:
        lifetime = lifetime or timedelta(days=90)
        at = expires_at - lifetime
    at = at or clock.now()
    response = {"access_token": "a", "refresh_token": "r", "expires_in": access_seconds}
    if lifetime is not None:
        response["refresh_token_expires_in"] = int(lifetime.total_seconds())
    return store.save_new(firm, admin, response, at)


def run_jobs(app) -> None:
    """Run every queued job in this process on ``app``, as `rq worker --burst` would, without forking.

    rq's SimpleWorker, the way rq's own tests run jobs; one test (tests/test_jobs.py) keeps the real forking worker
    process covered.
    """
    import panel.jobs

    saved = panel.jobs._app, panel.jobs._app_pid
    panel.jobs._app, panel.jobs._app_pid = app, os.getpid()  # jobs run on this very app
    try:
        SimpleWorker([panel.jobs.get_queue(app=app)], connection=get_redis(app)).work(burst=True)
    finally:
        panel.jobs._app, panel.jobs._app_pid = saved


def csrf_from(html: str) -> str:
    """The CSRF token embedded in a page (hidden input or hx-headers)."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'X-CSRFToken&#34;: &#34;([^&]+)&#34;', html) \
        or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)


class Session:
    """A signed-in test client with its CSRF token at hand."""

    def __init__(self, client, email: str, password: str = PASSWORD):
        self.client = client
        page = client.get("/login")
        resp = client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_from(page.text)})
        assert resp.status_code == 302, resp.text
        # The session's CSRF token, from the lightest page that carries one (the Sage page costs four times more).
        self.csrf = csrf_from(client.get("/settings/notifications").text)

    def post(self, url, htmx=True, **kwargs):
        """POST with the CSRF header, as htmx would send it."""
        headers = kwargs.pop("headers", {})
        headers.setdefault("X-CSRFToken", self.csrf)
        if htmx:
            headers.setdefault("HX-Request", "true")
        return self.client.post(url, headers=headers, **kwargs)

    def get(self, url, htmx=False, **kwargs):
        """GET, optionally as an htmx request."""
        headers = kwargs.pop("headers", {})
        if htmx:
            headers.setdefault("HX-Request", "true")
        return self.client.get(url, headers=headers, **kwargs)


def sign_in(page, base_url: str, email: str = "admin@example.com", password: str = PASSWORD) -> None:
    """Sign in through the real form in a browser page."""
    page.goto(f"{base_url}/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/settings/sage")


class LiveServer:
    """A real HTTP server running the app on 127.0.0.1 in a background thread.

    The socket is bound first, on a port the kernel picks (no window in which another test process could take
    it); the app, which must know its own address, is attached once built (``serve(app)``).
    """

    def __init__(self, app=None, port: int = 0):
        self.app = app
        self.server = make_server("127.0.0.1", port, self._dispatch, threaded=True)
        self.port = self.server.server_port
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request lines in test output
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default) in every test's teardown.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def _dispatch(self, environ, start_response):
        return self.app(environ, start_response)

    def serve(self, app) -> "LiveServer":
        """Serve ``app`` from now on."""
        self.app = app
        return self

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(5)


def start_live(tmp_path, template_db, redis_server, **config) -> LiveServer:
    """An app served over real HTTP on a free port, PANEL_BASE_URL pointing at itself (use as a context manager)."""
    server = LiveServer()
    config.setdefault("TESTING", False)
    config.setdefault("PANEL_BASE_URL", server.url)
    app = make_app(tmp_path, template_db, redis_server, **config)
    get_redis(app).flushdb()
    return server.serve(app)


class _FormParser:
    """Collects the forms of a page: action, method, hidden/text inputs and submit buttons."""

    def __init__(self):
        from html.parser import HTMLParser

        outer = self
        self.forms: list[dict] = []

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "form":
                    outer.forms.append({"action": a.get("action", ""), "method": (a.get("method") or "get").lower(),
                                        "fields": {}, "buttons": []})
                elif outer.forms and tag in ("input", "button"):
                    form = outer.forms[-1]
                    if tag == "button" or a.get("type") == "submit":
                        form["buttons"].append((a.get("name"), a.get("value", "")))
                    elif a.get("name"):
                        form["fields"][a["name"]] = a.get("value", "")

        self.parser = P()


def forms_of(html: str) -> list[dict]:
    """Every form of ``html`` as {action, method, fields, buttons}."""
    fp = _FormParser()
    fp.parser.feed(html)
    return fp.forms


def run_together(app, n: int, call) -> tuple[list, list[str]]:
    """Run ``call()`` in ``n`` threads released at once, each in its own app context; returns (results, errors)."""
    barrier, results, errors = threading.Barrier(n), [], []

    def one():
        from panel.extensions import db

        with app.app_context():
            barrier.wait()
            try:
                results.append(call())
            except Exception as exc:  # noqa: BLE001 - returned to the test, which asserts on it
                errors.append(f"{exc!r} caused by {exc.__cause__!r}")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors
