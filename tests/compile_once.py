"""What every test's fresh app would compile again, compiled once per test process: Jinja's templates,
SQLAlchemy's statements, werkzeug's URL builders (tests/support.py's make_app uses them; README "Tests")."""
from __future__ import annotations

from jinja2 import BytecodeCache
from sqlalchemy.util import LRUCache
from werkzeug.routing.rules import Rule

from panel.extensions import db


class SharedTemplates(BytecodeCache):
    """Compiled templates kept for the whole run: each test builds a new app, and compiling the page's templates
    again each time was most of a test's setup. Keys include each template's source checksum, so an edited
    template is compiled afresh."""

    def __init__(self):
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = SharedTemplates()


class SharedStatements:
    """Compiled SQL kept for the whole run: SQLAlchemy caches each statement's compiled form
    per engine, under a key that includes the engine's dialect object, so every test's new engine compiled every
    query again (about a third of a signed-in page view in a fresh app). Each new engine is given the first
    engine's dialect and statement cache. The dialect carries no per-database state (connect arguments and
    pool events stay with each engine), so what is cached for one engine is right for all of them; but a listener
    for dialect events (``do_connect``) would land on the shared dialect: such a test builds its app with
    ``make_app(..., shared_sql=False)``.
    """

    def __init__(self):
        self.cache = LRUCache(5000)
        self.dialects: dict[str, object] = {}

    def share(self, app) -> None:
        with app.app_context():
            engine = db.engine
            name = engine.dialect.name
            if name not in self.dialects:
                # A dialect learns the server's features (RETURNING, multi-row VALUES…) on its engine's first
                # connection; only then may it stand in for every later one.
                with engine.connect():
                    pass
                self.dialects[name] = engine.dialect
            engine.dialect = self.dialects[name]
            engine._compiled_cache = self.cache


STATEMENTS = SharedStatements()


_BUILDERS: dict[tuple, object] = {}
_compile_builder = Rule._compile_builder


def _shared_builder(rule, append_unknown: bool = True):
    """URL builders kept for the whole run: for every rule of every new app's URL map, werkzeug generates and
    compiles a Python function (six sevenths of create_app's time). The function depends only on the rule's text,
    its parsed parts and its defaults (it calls the rule's own converters through ``self``), so the one compiled
    for the first app is right for every later app with the same rule."""
    key = (rule.rule, tuple(rule._trace), repr(sorted((rule.defaults or {}).items())), append_unknown)
    if key not in _BUILDERS:
        _BUILDERS[key] = _compile_builder(rule, append_unknown)
    return _BUILDERS[key]


Rule._compile_builder = _shared_builder
