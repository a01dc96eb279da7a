"""Benchmark 3 (issue 6): reminder sweep scaling on SQLite and PostgreSQL.

For each database and scale: build the schema with the real migrations, bulk-insert N companies x 10 users with a
token each (a realistic share due), then time ``panel.reminders.sweep.find_and_claim(now)`` twice at the same
instant — the first sweep claims today's reminders, the second is the steady state every 15 minutes (everything
already claimed) — counting SQL statements with a ``before_cursor_execute`` listener on ``db.engine``.

Two series:
  share  N = 1k / 10k / 100k companies, 5 % due, 1 % with an open window whose send hour is still ahead, 94 % far
         from expiry (window opens in weeks).
  flat   the due set fixed (500 due + 100 open-but-later), only the far-from-expiry companies grow: 1k / 10k / 100k.
         The target "query count independent of the companies not due" means these rows are identical.
plus an "edge" check: one page of companies whose 10 (SQLite) / 20 (PostgreSQL) users are all opted in, and with
``--what-if`` the largest share case again with the claim INSERT sent as executemany (bench/sweep_whatif.py).
At 100k companies each case is swept ``--repeat`` times (ledger emptied in between); the best time is reported.

PostgreSQL runs in a private throw-away cluster (bench/pg_cluster.py: initdb in /tmp, 127.0.0.1, free port,
stopped and deleted at the end, even on error or Ctrl-C). SQLite files go to a temp dir, deleted at the end.

    .venv/bin/python bench/sweep_scaling.py --what-if            # everything (6-8 min on a shared 2 vCPU)
    .venv/bin/python bench/sweep_scaling.py --db sqlite --scales 1000 --flat-totals "" --no-edge   # quick
    PYTHONPATH=/tmp/sweep-bench-tools .venv/bin/python bench/sweep_scaling.py --profile   # + pyinstrument
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from pg_cluster import PgCluster  # noqa: E402

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)  # the sweep instant (a Friday, 12:00 UTC)
USERS_PER_COMPANY = 10
TIMEZONES = ["Europe/London", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
             "Australia/Sydney", "Asia/Kolkata", "Asia/Tokyo"]
ENV = {"PANEL_ENV": "development", "SECRET_KEY": "bench-secret-key-" + "x" * 32,
       "PANEL_ENCRYPTION_KEYS": "4pQZGKTO0f31V3XK9I_P-XkMUkrD8e-EPEXqGQuBioU="}

CATEGORIES = [  # (name, regex on the SQL) — to say which statements a sweep issues
    ("open_windows", re.compile(r"^SELECT sage_token\.company_id.*FROM sage_token JOIN company", re.S)),
    ("recipients", re.compile(r'^SELECT "?user"?\.company_id, "?user"?\.id', re.S)),
    ("history", re.compile(r"^SELECT max\(reminder_delivery\.claimed_at\)", re.S)),
    ("claim_insert", re.compile(r"^INSERT INTO reminder_delivery", re.S)),
    ("orphans", re.compile(r"^SELECT reminder_delivery\.id", re.S)),
]


def category(sql: str) -> str:
    for name, rx in CATEGORIES:
        if rx.search(sql.strip()):
            return name
    return "other:" + " ".join(sql.split())[:60]


# ---------------------------------------------------------------------------------------------------------- data

def company_rows(total: int, due: int, later: int, seed: int):
    """Plans for ``total`` companies: ``due`` due now, ``later`` with an open window but a send hour still ahead."""
    from panel.reminders.plan import CompanyPlan, company_is_due
    from panel.localtime import window_start

    rng = random.Random(seed)
    kinds = ["due"] * due + ["later"] * later + ["far"] * (total - due - later)
    rng.shuffle(kinds)  # spread the due companies over the whole id range, as real sign-up order would
    out = []
    for cid, kind in enumerate(kinds, start=1):
        days = rng.choice([7, 14, 28, 28, 28, 30])
        if kind == "later":
            tz = rng.choice([t for t in TIMEZONES if NOW.astimezone(ZoneInfo(t)).hour < 23])
        else:
            tz = rng.choice(TIMEZONES)
        local_hour = NOW.astimezone(ZoneInfo(tz)).hour
        if kind == "due":
            hour = rng.randint(0, local_hour)
            expires = NOW + timedelta(days=rng.uniform(-5, days - 1))  # inside the window, some already expired
        elif kind == "later":
            hour = rng.randint(local_hour + 1, 23)
            expires = NOW + timedelta(days=rng.uniform(1, days - 1))
        else:
            hour = rng.choice([7, 8, 8, 8, 9, 10])
            expires = NOW + timedelta(days=rng.uniform(days + 2, 89))
        expires = expires.replace(microsecond=0)
        opens = window_start(expires, days, tz)
        plan = CompanyPlan(cid, tz, hour, days, 1, expires)
        is_due = company_is_due(NOW, plan)
        assert is_due == (kind == "due") and (opens <= NOW) == (kind != "far"), (kind, plan, opens)
        out.append({"id": cid, "tz": tz, "hour": hour, "days": days, "expires": expires, "opens": opens,
                    "kind": kind})
    return out


def seed(db, companies, users_per_company: int, opted_in) -> None:
    """Bulk-insert companies, users and tokens (COPY on PostgreSQL, Core executemany on SQLite)."""
    from panel.models import Company, SageToken, User

    created = NOW - timedelta(days=400)

    def uid(cid, j):
        return (cid - 1) * users_per_company + j + 1

    comp = [dict(id=c["id"], name=f"Company {c['id']}", timezone=c["tz"], reminder_days=c["days"],
                 reminder_hour=c["hour"], sage_generation=1, created_at=created) for c in companies]
    users = [dict(id=uid(c["id"], j), company_id=c["id"], email=f"u{j}.c{c['id']}@bench.example",
                  name=f"User {j} of {c['id']}", password_hash="x", role="admin" if j == 0 else "user", active=True,
                  notify_sage_token=opted_in(j), created_at=created)
             for c in companies for j in range(users_per_company)]
    toks = [dict(id=c["id"], company_id=c["id"], generation=1, connected_by_id=uid(c["id"], 0),
                 connected_by_name=f"User 0 of {c['id']}", consented_at=c["expires"] - timedelta(days=90),
                 expires_at=c["expires"], state="ok", remind_from=c["opens"], version=1,
                 updated_at=c["expires"] - timedelta(days=90)) for c in companies]
    tables = [(Company.__table__, comp), (User.__table__, users), (SageToken.__table__, toks)]
    if db.engine.dialect.name == "postgresql":
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            for table, rows in tables:
                cols = list(rows[0])
                with cur.copy(f'COPY "{table.name}" ({", ".join(cols)}) FROM STDIN') as cp:
                    for r in rows:  # UTCDateTime stores naive UTC
                        cp.write_row([v.astimezone(timezone.utc).replace(tzinfo=None) if isinstance(v, datetime)
                                      else v for v in (r[k] for k in cols)])
            for table, _ in tables:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                            f"(SELECT max(id) FROM \"{table.name}\"))")
            raw.commit()
            raw.driver_connection.autocommit = True
            cur.execute("ANALYZE")  # what autovacuum does shortly after a bulk load
            raw.driver_connection.autocommit = False
        finally:
            raw.close()
    else:
        with db.engine.begin() as conn:
            for table, rows in tables:
                for i in range(0, len(rows), 20000):
                    conn.execute(table.insert(), rows[i:i + 20000])


# ----------------------------------------------------------------------------------------------------- measuring

class QueryLog:
    """Counts statements and their database time by category (before/after_cursor_execute on db.engine)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.on = False
        self.reset()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def reset(self):
        self.count = Counter()
        self.seconds = defaultdict(float)
        self.first = {}

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if self.on:
            conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if not self.on:
            return
        cat = category(statement)
        self.count[cat] += 1
        self.seconds[cat] += time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        self.first.setdefault(cat, (statement, parameters))

    @property
    def total(self) -> int:
        return sum(self.count.values())


def timed_sweep(db, qlog, profile_to: str | None = None):
    from panel.reminders import sweep

    db.session.remove()
    qlog.reset()
    qlog.on = True
    profiler = None
    if profile_to:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    t0, c0 = time.perf_counter(), time.process_time()
    result = sweep.find_and_claim(NOW)
    elapsed = time.perf_counter() - t0
    qlog.cpu = time.process_time() - c0  # this process only (not the PostgreSQL server)
    if profiler:
        profiler.stop()
        with open(profile_to, "w") as fh:
            fh.write(profiler.output_text(unicode=False, color=False, show_all=False))
    qlog.on = False
    db.session.remove()
    return result, elapsed, dict(qlog.count), {k: round(v, 4) for k, v in qlog.seconds.items()}, dict(qlog.first)


def explain(db, first: dict) -> dict:
    """Query plans of the sweep's statements, with the parameters the sweep used for its first page."""
    plans = {}
    pg = db.engine.dialect.name == "postgresql"
    with db.engine.connect() as conn:
        for cat in ("open_windows", "recipients", "history", "orphans"):
            if cat not in first:
                continue
            sql, params = first[cat]
            prefix = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " if pg else "EXPLAIN QUERY PLAN "
            rows = conn.exec_driver_sql(prefix + sql, params).all()
            plans[cat] = [r[0] for r in rows] if pg else [f"{r[1]}|{r[3]}" for r in rows]
        conn.rollback()
    return plans


def run_case(dbkind: str, url: str, workdir: str, label: str, total: int, due: int, later: int,
             users_per_company: int = USERS_PER_COMPANY, opted_in=lambda j: j % 2 == 0, want_explain=False,
             profile_to: str | None = None, sqlite_var_limit: int | None = None, repeat: int = 1,
             what_if: bool = False) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import delete

    from panel import clock, create_app
    from panel.extensions import db
    from panel.models import ReminderDelivery

    inst = tempfile.mkdtemp(prefix="inst-", dir=workdir)
    app = create_app({"INSTANCE_PATH": inst, "ENV_VARS": ENV, "SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": ""})
    out = {"db": dbkind, "series": label, "companies": total, "users": total * users_per_company,
           "opted_in_per_company": sum(bool(opted_in(j)) for j in range(users_per_company))}
    with app.app_context():
        clock.freeze(NOW)
        if sqlite_var_limit:  # emulate SQLite's compile-time default (Debian's build raises it to 250000)
            import sqlite3

            from sqlalchemy import event

            out["sqlite_variable_limit"] = sqlite_var_limit
            event.listen(db.engine, "connect", lambda dbapi_conn, _rec: dbapi_conn.setlimit(
                sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, sqlite_var_limit))
        try:
            t = time.perf_counter()
            upgrade()
            out["migrate_s"] = round(time.perf_counter() - t, 2)
            companies = company_rows(total, due, later, seed=total * 7 + due)
            t = time.perf_counter()
            seed(db, companies, users_per_company, opted_in)
            out["seed_s"] = round(time.perf_counter() - t, 2)
            out["open_windows"] = sum(c["kind"] != "far" for c in companies)
            out["due_companies"] = sum(c["kind"] == "due" for c in companies)
            expected_claims = out["due_companies"] * out["opted_in_per_company"]
            qlog = QueryLog(db.engine)
            out["loadavg_before"] = round(os.getloadavg()[0], 2)
            s1s, s2s = [], []
            for attempt in range(repeat):
                if attempt:  # start the day again: empty ledger, same data
                    db.session.execute(delete(ReminderDelivery))
                    db.session.commit()
                    db.session.remove()
                try:
                    if what_if:
                        from sweep_whatif import patched_claim

                        with patched_claim():
                            r1, s1, q1, dbt1, first = timed_sweep(db, qlog, profile_to if not attempt else None)
                    else:
                        r1, s1, q1, dbt1, first = timed_sweep(db, qlog, profile_to if not attempt else None)
                    cpu1 = qlog.cpu
                except Exception as exc:  # the edge case may fail: record why
                    db.session.rollback()
                    out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                    return out
                assert r1.companies_due == out["due_companies"], (r1.companies_due, out["due_companies"])
                assert r1.claimed == expected_claims, (r1.claimed, expected_claims)
                r2, s2, q2, dbt2, _ = timed_sweep(db, qlog)
                assert r2.claimed == 0 and r2.recovered == 0, r2
                s1s.append(s1)
                s2s.append(s2)
                out.setdefault("sweep1_python_cpu_s", []).append(round(cpu1, 3))
                if not attempt:
                    out.update(sweep1_queries=sum(q1.values()), sweep1_by_kind=q1, sweep1_execute_s=dbt1,
                               claimed=r1.claimed, companies_due_found=r1.companies_due, batches=len(r1.batches),
                               recovered=r1.recovered, sweep2_queries=sum(q2.values()), sweep2_by_kind=q2,
                               sweep2_execute_s=dbt2)
                    if want_explain:
                        out["plans_sweep1_first_page"] = explain(db, first)
            out.update(sweep1_s=round(min(s1s), 3), sweep1_all_s=[round(x, 3) for x in s1s],
                       sweep2_s=round(min(s2s), 3), sweep2_all_s=[round(x, 3) for x in s2s],
                       loadavg_after=round(os.getloadavg()[0], 2))
        finally:
            clock.freeze(None)
            db.session.remove()
            db.engine.dispose()
    return out


# ----------------------------------------------------------------------------------------------------------- main

def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    import sqlalchemy
    import sqlite3

    return {"uname": " ".join(platform.uname()), "nproc": os.cpu_count(), "cpu": cpu,
            "ram_gib": round(int(mem) / 1024 / 1024, 1), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "sqlalchemy": sqlalchemy.__version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--scales", default="1000,10000,100000", help="companies for the 'share' series")
    ap.add_argument("--due-share", type=float, default=0.05)
    ap.add_argument("--later-share", type=float, default=0.01)
    ap.add_argument("--flat-due", type=int, default=500)
    ap.add_argument("--flat-later", type=int, default=100)
    ap.add_argument("--flat-totals", default="1000,10000,100000", help="companies for the 'flat' series ('' = skip)")
    ap.add_argument("--no-edge", action="store_true", help="skip the all-opted-in page check")
    ap.add_argument("--profile", action="store_true", help="pyinstrument the first sweep of the largest 'share' case")
    ap.add_argument("--repeat", type=int, default=3, help="sweeps per case at 100k (ledger emptied between); min reported")
    ap.add_argument("--what-if", action="store_true", help="add the largest 'share' case with claim() as executemany "
                    "(bench/sweep_whatif.py; the fix proposed for the claim INSERT)")
    ap.add_argument("--out", default=os.path.join(HERE, "sweep_scaling.json"))
    args = ap.parse_args(argv)

    ints = lambda s: [int(x) for x in s.split(",") if x.strip()]  # noqa: E731
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="sweep-bench-")
    report = {"machine": machine(), "command": " ".join([os.path.relpath(sys.executable)] + sys.argv),
              "sweep_instant": NOW.isoformat(), "cases": []}
    pg = None
    try:
        for dbkind in [d.strip() for d in args.db.split(",") if d.strip()]:
            if dbkind == "postgresql":
                pg = PgCluster()  # assigned before start() so the finally below stops it whatever happens
                pg.start()
                report["machine"]["postgresql"] = pg.version()
            n = 0

            def url_for(name):
                nonlocal n
                n += 1
                if dbkind == "postgresql":
                    return pg.recreate_database(f"sweep_{n}")
                return f"sqlite:///{workdir}/{name}-{n}.sqlite3"

            cases = []
            biggest = max(ints(args.scales) or [0])
            for total in ints(args.scales):
                due, later = round(total * args.due_share), round(total * args.later_share)
                prof = (os.path.join(HERE, f"sweep_scaling_profile_{dbkind}.txt")
                        if args.profile and total == biggest else None)
                cases.append(("share", total, due, later, {"want_explain": total == biggest, "profile_to": prof,
                                                           "repeat": args.repeat if total >= 100000 else 1}))
            flat = ints(args.flat_totals)
            for total in flat:
                cases.append(("flat", total, args.flat_due, args.flat_later, {"want_explain": total == max(flat)}))
            if args.what_if and biggest:
                cases.append(("what-if: claim() as executemany", biggest, round(biggest * args.due_share),
                              round(biggest * args.later_share), {"what_if": True, "repeat": args.repeat}))
            if not args.no_edge:  # one page (500 companies) of claims larger than the bind-parameter limit
                if dbkind == "sqlite":
                    cases.append(("edge: 10 users all opted in, SQLite default variable limit 32766", 600, 600, 0,
                                  {"opted_in": lambda j: True, "sqlite_var_limit": 32766}))
                    cases.append(("edge: 10 users all opted in, Debian's limit 250000", 600, 600, 0,
                                  {"opted_in": lambda j: True}))
                else:
                    cases.append(("edge: 20 users all opted in (psycopg limit 65535)", 600, 600, 0,
                                  {"users_per_company": 20, "opted_in": lambda j: True}))
            for label, total, due, later, kw in cases:
                res = run_case(dbkind, url_for(label.split(":")[0]), workdir, label, total, due, later, **kw)
                report["cases"].append(res)
                print(json.dumps({k: v for k, v in res.items() if not k.startswith("plans")}), flush=True)
                if dbkind == "sqlite":
                    for f in os.listdir(workdir):
                        if f.endswith(".sqlite3"):
                            os.remove(os.path.join(workdir, f))
            if pg:
                pg.stop()
                pg = None
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report["total_runtime_s"] = round(time.perf_counter() - started, 1)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1, default=str)
    print(table(report))
    return 0


def table(report: dict) -> str:
    """The results as a Markdown table."""
    lines = ["| db | series | companies | users | open windows | due | seed s | sweep 1 s | sweep 1 queries | "
             "claimed | sweep 2 s | sweep 2 queries |", "|" + "---|" * 12]
    for c in report["cases"]:
        if "error" in c:
            lines.append(f"| {c['db']} | {c['series']} | {c['companies']:,} | {c['users']:,} | {c['open_windows']:,} "
                         f"| {c['due_companies']:,} | {c['seed_s']} | **error**: {c['error']} | | | | |")
            continue
        runs = lambda k: "" if len(c[k + "_all_s"]) == 1 else " (" + ", ".join(map(str, c[k + "_all_s"])) + ")"  # noqa
        lines.append(f"| {c['db']} | {c['series']} | {c['companies']:,} | {c['users']:,} | {c['open_windows']:,} | "
                     f"{c['due_companies']:,} | {c['seed_s']} | {c['sweep1_s']}{runs('sweep1')} | "
                     f"{c['sweep1_queries']} | {c['claimed']:,} | {c['sweep2_s']}{runs('sweep2')} | "
                     f"{c['sweep2_queries']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
