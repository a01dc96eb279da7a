"""The test apps share one compiled-SQL cache and one dialect (tests/compile_once.py): the shared
dialect must be one that has met the server, or every later app would run without RETURNING and the like."""
from __future__ import annotations

from compile_once import STATEMENTS
from support import make_app

from panel.extensions import db


def test_apps_share_a_dialect_that_has_met_the_server(tmp_path, template_db, redis_server, monkeypatch):
    monkeypatch.setattr(STATEMENTS, "dialects", {})  # as at the start of a run: the next app's dialect is shared
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_app(tmp_path / "a", template_db, redis_server)  # never used: nothing of its own connects
    second = make_app(tmp_path / "b", template_db, redis_server)
    with first.app_context():
        dialect = db.engine.dialect
    with second.app_context():
        assert db.engine.dialect is dialect and db.engine._compiled_cache is STATEMENTS.cache
    assert dialect.server_version_info is not None  # initialize() ran: the server's features are known
    assert dialect.insert_returning
