"""The triggers that keep ``panel.derived``'s tables (poll versions, company tallies, ledger days) and SQLite's
people-search index, for SQLite and PostgreSQL. Installed by migration 0008_fast_polls.

A migration that rebuilds one of the watched tables (SQLite's batch mode copies the table and drops the old one,
and its triggers with it) must call ``install(op.get_bind())`` again at its end; tests/test_derived.py fails when a
trigger is missing. SQLite uses row triggers; PostgreSQL statement triggers with transition tables, so a bulk
statement (a sweep's claims) raises each company's version once, with rows locked in company order.
"""
from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

DONE = "('sent', 'failed', 'uncertain')"  # ledger statuses the "Last reminder" line counts
QUIET = "('claimed', 'sending')"       # moves between these change nothing the widget shows
USER_SHOWN = ("company_id", "name", "email", "role", "active", "notify_sage_token")
USER_ACCESS = ("active", "role", "password_hash", "company_id")
TOKEN_SHOWN = ("company_id", "generation", "consented_at", "expires_at", "state", "state_reason",
               "connected_by_name")
CHECK_SHOWN = ("enabled", "checked_at", "ok_at", "status", "generation", "failing_since", "reason")  # the check line
SEARCH_SQLITE = "lower({r}.name) || char(31) || lower({r}.email)"

# --------------------------------------------------------------------------------------------------- SQLite

_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def _bump(kind: str, ref: str) -> str:
    return (f"INSERT INTO poll_state (kind, ref_id, version, changed_at) VALUES ('{kind}', {ref}, 1, {_NOW}) "
            "ON CONFLICT (kind, ref_id) DO UPDATE SET version = version + 1, changed_at = excluded.changed_at;")


def _tally(r: str, sign: str) -> str:
    return (f"INSERT INTO company_tally (company_id, people, recipients) VALUES ({r}.company_id, {sign}1, "
            f"{sign}({r}.active AND {r}.notify_sage_token)) ON CONFLICT (company_id) DO UPDATE SET "
            "people = people + excluded.people, recipients = recipients + excluded.recipients;")


def _day_add(r: str) -> str:
    return ("INSERT INTO ledger_day (company_id, local_date, sent, failed, uncertain, last_at, failure) "
            f"SELECT {r}.company_id, {r}.local_date, {r}.status = 'sent', {r}.status = 'failed', "
            f"{r}.status = 'uncertain', {r}.finished_at, "
            f"CASE WHEN {r}.status = 'failed' THEN {r}.reason END WHERE {r}.status IN {DONE} "
            "ON CONFLICT (company_id, local_date) DO UPDATE SET sent = sent + excluded.sent, "
            "failed = failed + excluded.failed, uncertain = uncertain + excluded.uncertain, last_at = CASE WHEN last_at IS NULL OR excluded.last_at > last_at "
            "THEN excluded.last_at ELSE last_at END, failure = coalesce(failure, excluded.failure);")


def _day_sub(r: str) -> str:
    return (f"UPDATE ledger_day SET sent = sent - ({r}.status = 'sent'), failed = failed - ({r}.status = 'failed'), "
            f"uncertain = uncertain - ({r}.status = 'uncertain') WHERE company_id = {r}.company_id AND local_date = {r}.local_date AND {r}.status IN {DONE};")


def _fts(r: str, delete: bool) -> str:
    if delete:
        return (f"INSERT INTO user_search (user_search, rowid, search) VALUES ('delete', {r}.id, "
                f"{SEARCH_SQLITE.format(r=r)});")
    return f"INSERT INTO user_search (rowid, search) VALUES ({r}.id, {SEARCH_SQLITE.format(r=r)});"


def _changed(cols) -> str:
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in cols)


def _sqlite_triggers(fts: bool) -> dict[str, str]:
    add, drop = (_fts("NEW", False), _fts("OLD", True)) if fts else ("", "")
    body = {
        "panel_company_upd": ("AFTER UPDATE ON company", _bump("c", "NEW.id")),
        "panel_user_ins": ('AFTER INSERT ON "user"', _bump("c", "NEW.company_id") + _tally("NEW", "") + add),
        "panel_user_del": ('AFTER DELETE ON "user"', _bump("c", "OLD.company_id") + _bump("u", "OLD.id")
                           + _tally("OLD", "-") + drop),
        "panel_user_shown": (f'AFTER UPDATE ON "user" WHEN {_changed(USER_SHOWN)}',
                             _bump("c", "OLD.company_id") + _bump("c", "NEW.company_id") + _tally("OLD", "-")
                             + _tally("NEW", "") + drop + add),
        "panel_user_access": (f'AFTER UPDATE ON "user" WHEN {_changed(USER_ACCESS)}', _bump("u", "NEW.id")),
        "panel_session_del": ("AFTER DELETE ON user_session", _bump("u", "OLD.user_id")),
        "panel_token_ins": ("AFTER INSERT ON sage_token", _bump("c", "NEW.company_id")),
        "panel_token_del": ("AFTER DELETE ON sage_token", _bump("c", "OLD.company_id")),
        "panel_token_upd": (f"AFTER UPDATE ON sage_token WHEN {_changed(TOKEN_SHOWN)}",
                            _bump("c", "OLD.company_id") + _bump("c", "NEW.company_id")),
        "panel_ledger_ins": ("AFTER INSERT ON reminder_delivery", _bump("c", "NEW.company_id") + _day_add("NEW")),
        "panel_ledger_upd": ("AFTER UPDATE ON reminder_delivery WHEN OLD.status IS NOT NEW.status AND "
                             f"(OLD.status NOT IN {QUIET} OR NEW.status NOT IN {QUIET})",
                             _bump("c", "NEW.company_id") + _day_sub("OLD") + _day_add("NEW")),
        "panel_ledger_del": ("AFTER DELETE ON reminder_delivery", _bump("c", "OLD.company_id") + _day_sub("OLD")),
        "panel_check_ins": ("AFTER INSERT ON connection_check", _bump("c", "NEW.company_id")),
        "panel_check_upd": (f"AFTER UPDATE ON connection_check WHEN {_changed(CHECK_SHOWN)}",
                            _bump("c", "NEW.company_id")),
        "panel_check_del": ("AFTER DELETE ON connection_check", _bump("c", "OLD.company_id")),
    }
    return {name: f"CREATE TRIGGER {name} {when} BEGIN {sql} END" for name, (when, sql) in body.items()}


# --------------------------------------------------------------------------------------------------- PostgreSQL

_PG_BUMP = """
CREATE OR REPLACE FUNCTION panel_bump(k text, refs integer[]) RETURNS void LANGUAGE sql AS $$
  INSERT INTO poll_state (kind, ref_id, version, changed_at)
  SELECT k, r, 1, extract(epoch FROM clock_timestamp()) FROM (SELECT DISTINCT unnest(refs) AS r) s
  WHERE r IS NOT NULL ORDER BY r
  ON CONFLICT (kind, ref_id) DO UPDATE SET version = poll_state.version + 1, changed_at = EXCLUDED.changed_at
$$"""
_PG_DAY_ADD = f"""
  INSERT INTO ledger_day (company_id, local_date, sent, failed, uncertain, last_at, failure)
  SELECT company_id, local_date, count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'failed'),
         count(*) FILTER (WHERE status = 'uncertain'), max(finished_at), min(reason) FILTER (WHERE status = 'failed')
  FROM {{rows}} WHERE status IN {DONE} GROUP BY company_id, local_date ORDER BY 1, 2
  ON CONFLICT (company_id, local_date) DO UPDATE SET sent = ledger_day.sent + EXCLUDED.sent,
    failed = ledger_day.failed + EXCLUDED.failed, uncertain = ledger_day.uncertain + EXCLUDED.uncertain, last_at = GREATEST(ledger_day.last_at, EXCLUDED.last_at),
    failure = coalesce(ledger_day.failure, EXCLUDED.failure);"""
_PG_DAY_SUB = f"""
  UPDATE ledger_day d SET sent = d.sent - s.sent, failed = d.failed - s.failed, uncertain = d.uncertain - s.uncertain
  FROM (SELECT company_id, local_date, count(*) FILTER (WHERE status = 'sent') AS sent,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'uncertain') AS uncertain
        FROM {{rows}} WHERE status IN {DONE} GROUP BY company_id, local_date) s
  WHERE d.company_id = s.company_id AND d.local_date = s.local_date;"""


def _distinct(cols, a: str = "o", b: str = "n") -> str:
    return f"({', '.join(f'{a}.{c}' for c in cols)}) IS DISTINCT FROM ({', '.join(f'{b}.{c}' for c in cols)})"


def _pg_tally(rows: str) -> str:
    """Add ``rows`` (company_id c, people p, recipients r) to the tallies, one upsert per company."""
    return (f"INSERT INTO company_tally (company_id, people, recipients) SELECT c, sum(p), sum(r) FROM ({rows}) t "
            "GROUP BY c ORDER BY c ON CONFLICT (company_id) DO UPDATE SET people = company_tally.people + "
            "EXCLUDED.people, recipients = company_tally.recipients + EXCLUDED.recipients;")


def _user_rows(table: str, sign: str) -> str:
    return f"SELECT company_id AS c, {sign}1 AS p, {sign}(active AND notify_sage_token)::int AS r FROM {table}"


_USER_CHANGED = (f"(SELECT o.id, o.company_id AS old_c, n.company_id AS new_c, (o.active AND o.notify_sage_token)::int "
                 f"AS old_r, (n.active AND n.notify_sage_token)::int AS new_r, {_distinct(USER_ACCESS)} AS access, "
                 f"{_distinct(USER_SHOWN)} AS shown FROM old_rows o JOIN new_rows n USING (id) "
                 f"WHERE {_distinct(USER_SHOWN)} OR {_distinct(USER_ACCESS)})")
_CHANGED_LEDGER = (f"(SELECT o.* FROM old_rows o JOIN new_rows n USING (id) WHERE o.status IS DISTINCT FROM n.status "
                   f"AND (o.status NOT IN {QUIET} OR n.status NOT IN {QUIET}))")
_CHANGED_LEDGER_NEW = _CHANGED_LEDGER.replace("SELECT o.*", "SELECT n.*")
_PG_FUNCTIONS = {
    # name: (table, event, transition tables, body)
    "panel_company_upd": ("company", "UPDATE", "NEW TABLE AS new_rows",
                          "PERFORM panel_bump('c', ARRAY(SELECT id FROM new_rows));"),
    "panel_user_ins": ('"user"', "INSERT", "NEW TABLE AS new_rows",
                       "PERFORM panel_bump('c', ARRAY(SELECT company_id FROM new_rows));"
                       + _pg_tally(_user_rows("new_rows", ""))),
    "panel_user_del": ('"user"', "DELETE", "OLD TABLE AS old_rows",
                       "PERFORM panel_bump('c', ARRAY(SELECT company_id FROM old_rows));"
                       "PERFORM panel_bump('u', ARRAY(SELECT id FROM old_rows));"
                       + _pg_tally(_user_rows("old_rows", "-"))),
    "panel_user_upd": ('"user"', "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                       f"PERFORM panel_bump('c', ARRAY(SELECT unnest(ARRAY[old_c, new_c]) FROM {_USER_CHANGED} ch "
                       "WHERE shown));"
                       f"PERFORM panel_bump('u', ARRAY(SELECT id FROM {_USER_CHANGED} ch WHERE access));"
                       + _pg_tally(f"SELECT old_c AS c, -1 AS p, -old_r AS r FROM {_USER_CHANGED} a WHERE shown "
                                   f"UNION ALL SELECT new_c, 1, new_r FROM {_USER_CHANGED} b WHERE shown")),
    "panel_session_del": ("user_session", "DELETE", "OLD TABLE AS old_rows",
                          "PERFORM panel_bump('u', ARRAY(SELECT user_id FROM old_rows));"),
    "panel_token_ins": ("sage_token", "INSERT", "NEW TABLE AS new_rows",
                        "PERFORM panel_bump('c', ARRAY(SELECT company_id FROM new_rows));"),
    "panel_token_del": ("sage_token", "DELETE", "OLD TABLE AS old_rows",
                        "PERFORM panel_bump('c', ARRAY(SELECT company_id FROM old_rows));"),
    "panel_token_upd": ("sage_token", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                        "PERFORM panel_bump('c', ARRAY(SELECT unnest(ARRAY[o.company_id, n.company_id]) "
                        f"FROM old_rows o JOIN new_rows n USING (id) WHERE {_distinct(TOKEN_SHOWN)}));"),
    "panel_ledger_ins": ("reminder_delivery", "INSERT", "NEW TABLE AS new_rows",
                         "PERFORM panel_bump('c', ARRAY(SELECT company_id FROM new_rows));"
                         + _PG_DAY_ADD.format(rows="new_rows")),
    "panel_ledger_upd": ("reminder_delivery", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                         f"PERFORM panel_bump('c', ARRAY(SELECT company_id FROM {_CHANGED_LEDGER_NEW} c));"
                         + _PG_DAY_SUB.format(rows=f"{_CHANGED_LEDGER} c")
                         + _PG_DAY_ADD.format(rows=f"{_CHANGED_LEDGER_NEW} c")),
    "panel_ledger_del": ("reminder_delivery", "DELETE", "OLD TABLE AS old_rows",
                         "PERFORM panel_bump('c', ARRAY(SELECT company_id FROM old_rows));"
                         + _PG_DAY_SUB.format(rows="old_rows")),
    "panel_check_ins": ("connection_check", "INSERT", "NEW TABLE AS new_rows",
                        "PERFORM panel_bump('c', ARRAY(SELECT company_id FROM new_rows));"),
    "panel_check_upd": ("connection_check", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                        "PERFORM panel_bump('c', ARRAY(SELECT n.company_id FROM old_rows o JOIN new_rows n "
                        f"USING (company_id) WHERE {_distinct(CHECK_SHOWN)}));"),
    "panel_check_del": ("connection_check", "DELETE", "OLD TABLE AS old_rows",
                        "PERFORM panel_bump('c', ARRAY(SELECT company_id FROM old_rows));"),
}
LATER = {"panel_check_ins", "panel_check_upd", "panel_check_del"}  # on connection_check (migration 0010 installs)


def expected(dialect: str) -> set[str]:
    """The trigger names ``install`` creates on this dialect."""
    if dialect == "postgresql":
        return set(_PG_FUNCTIONS)
    return set(_sqlite_triggers(False))


def _pg_statements(skip: set[str]) -> list[str]:
    out = [_PG_BUMP]
    for name, (table, event, refs, body) in _PG_FUNCTIONS.items():
        if name in skip:
            continue
        out.append(f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} "
                   "RETURN NULL; END $$")
        out.append(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        out.append(f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {refs} FOR EACH STATEMENT "
                   f"EXECUTE FUNCTION {name}()")
    return out


def has_search_index(bind: Connection) -> bool:
    """True when SQLite's trigram table for people search exists (FTS5 may be missing from a SQLite build)."""
    if bind.dialect.name != "sqlite":
        return False
    return bind.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'user_search'")).first() is not None


def install(bind: Connection) -> None:
    """(Re)create every trigger for the connection's database; those on tables a later migration creates (``LATER``)
    only once their table exists — that migration calls ``install`` again."""
    skip = set() if "connection_check" in inspect(bind).get_table_names() else LATER
    if bind.dialect.name == "postgresql":
        for sql in _pg_statements(skip):
            bind.execute(text(sql))
        return
    for name, sql in _sqlite_triggers(has_search_index(bind)).items():
        if name in skip:
            continue
        bind.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        bind.execute(text(sql))


def drop(bind: Connection) -> None:
    """Remove every trigger and function ``install`` created."""
    tables = set(inspect(bind).get_table_names())
    if bind.dialect.name == "postgresql":
        for name, (table, *_rest) in _PG_FUNCTIONS.items():
            if table.strip('"') in tables:
                bind.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
            bind.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))
        bind.execute(text("DROP FUNCTION IF EXISTS panel_bump(text, integer[])"))
        return
    for name in _sqlite_triggers(False):
        bind.execute(text(f"DROP TRIGGER IF EXISTS {name}"))

