"""Benchmark 6 — cost by company size: the widget, the Sage page and the recipients list at 1 / 1,000 / 100,000
users, and at 100,000 users with 50,000 ledger rows on the last reminder day, on SQLite and PostgreSQL.

For each case a fresh database is migrated with the real migrations and bulk-loaded: one company ("Big Co") with
an admin and N-1 users (every other one switched on, names "Person 000001" …), a stored token (through
``panel.sage.store.save_new``, 40 days left), and for the ledger case 50,000 sent/failed rows dated yesterday (the
last reminder day). The app runs in-process (Flask test client, one thread, the admin signed in through the real
form), so the figures are the server's own time per request, without HTTP. Every request is checked (200, expected
markup) and timed as the median of several interleaved rounds; SQL statements per request are counted.

  widget          GET /settings/sage/widget with HX-Request (an event refresh: always a full render)
  page            GET /settings/sage (the admin's full page: widget, settings, recipients page 1, activity)
  recipients p1   the list fragment, first page
  recipients last the list fragment's last page (the "Last" link when the list has one, else ?page=999999)
  search (1 hit)  ?q=person 077777 (one person at 100k; none at smaller sizes)
  search (none)   ?q=nobody-at-all (no match: the worst case for a substring search)

Targets (issue 13): widget and page within 1.5x of the 1-user figures at every size; recipients last page and
search < 20 ms at 100k, on both databases.

PostgreSQL is Debian's server in a private cluster (bench/pg_cluster.py). Run:
    .venv/bin/python -m bench.company_size [--sizes 1,1000,100000] [--rounds 5] [--db sqlite,postgresql]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import command_line, machine, machine_markdown

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_cluster import PgCluster  # noqa: E402

PASSWORD = "bench-password-not-secret"
ADMIN = "admin@big.example"
ENV = {"PANEL_ENV": "development", "SECRET_KEY": "bench-" + "k" * 50,
       "PANEL_ENCRYPTION_KEYS": "4pQZGKTO0f31V3XK9I_P-XkMUkrD8e-EPEXqGQuBioU=", "PANEL_DEMO_PASSWORD": PASSWORD}
LEDGER_ROWS = 50_000
TARGET_RATIO = 1.5
TARGET_LIST_MS = 20.0
CHUNK = 2000  # rows per INSERT: 12 columns x 2000 stays under SQLite's 32,766 bound parameters


def build(url: str, inst: str, users: int, ledger: int):
    """Migrate a fresh database, load one company of ``users`` people (and ``ledger`` rows); return the app."""
    from flask_migrate import upgrade
    from werkzeug.security import generate_password_hash

    from panel import clock, create_app
    from panel.extensions import db
    from panel.localtime import local_date
    from panel.models import Company, ReminderDelivery, User
    from panel.reminders.plan import day_start
    from panel.sage import store

    app = create_app({"INSTANCE_PATH": inst, "ENV_VARS": ENV, "SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": ""})
    cheap = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1")
    with app.app_context():
        upgrade()
        now = clock.now()
        company = Company(name="Big Co", timezone="Europe/London")
        db.session.add(company)
        db.session.flush()
        rows = [{"company_id": company.id, "email": ADMIN, "name": "Alice Admin", "password_hash": cheap,
                 "role": "admin", "active": True, "notify_sage_token": True, "created_at": now}]
        rows += [{"company_id": company.id, "email": f"person{i:06d}@big.example", "name": f"Person {i:06d}",
                  "password_hash": cheap, "role": "user", "active": True, "notify_sage_token": i % 2 == 0,
                  "created_at": now} for i in range(1, users)]
        # One multi-VALUES statement per chunk, as a bulk import would send: the row-per-statement executemany
        # fires PostgreSQL's statement triggers once per row, each re-updating the same tally rows (quadratic).
        for start in range(0, len(rows), CHUNK):
            db.session.execute(User.__table__.insert().values(rows[start:start + CHUNK]))
        db.session.commit()
        admin = db.session.execute(db.select(User).filter_by(email=ADMIN)).scalar_one()
        token = store.save_new(company, admin, {"access_token": "a", "refresh_token": "r", "expires_in": 480},
                               now - timedelta(days=50))
        if ledger:
            ids = db.session.execute(db.select(User.id).where(User.company_id == company.id)
                                     .order_by(User.id).limit(ledger)).scalars().all()
            day = local_date(now - timedelta(days=1), company.timezone)
            start_of_day = day_start(day, company.timezone)  # the ledger's key since 0006 (a zone's day)
            done = now - timedelta(hours=16)
            lrows = [{"company_id": company.id, "user_id": uid, "generation": token.generation, "local_date": day,
                      "day_start": start_of_day, "status": "failed" if n % 100 == 0 else "sent", "attempts": 1,
                      "claimed_at": done,
                      "sending_since": done, "finished_at": done + timedelta(milliseconds=n),
                      "recipient": f"r{n}@big.example", "reason": "550 no such user" if n % 100 == 0 else None}
                     for n, uid in enumerate(ids)]
            for start in range(0, len(lrows), CHUNK):
                db.session.execute(ReminderDelivery.__table__.insert().values(lrows[start:start + CHUNK]))
            db.session.commit()
        if url.startswith("postgresql"):
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
        db.session.remove()
    return app


def sign_in(app):
    """A test client signed in as the company's admin through the real form."""
    client = app.test_client()
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    resp = client.post("/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302, resp.status_code
    return client


def last_link(fragment: str) -> str:
    """The URL of the recipients list's last page: its "Last" link when it has one, else a far page number."""
    m = re.search(r'<a[^>]*data-page="last"[^>]*hx-get="([^"]+)"', fragment) or \
        re.search(r'<a[^>]*hx-get="([^"]+)"[^>]*data-page="last"', fragment)
    return m.group(1).replace("&amp;", "&") if m else "/settings/sage/recipients?page=999999"


def measure(app, rounds: int, per_round: int) -> dict:
    """Median ms per request and SQL statements per request for each target."""
    from sqlalchemy import event

    from panel.extensions import db

    client = sign_in(app)
    hx = {"HX-Request": "true"}
    first = client.get("/settings/sage/recipients", headers=hx).text
    targets = {
        "widget": ("/settings/sage/widget", hx, 'id="token-widget"'),
        "page": ("/settings/sage", {}, 'id="recipient-list"'),
        "recipients p1": ("/settings/sage/recipients", hx, 'id="recipient-list"'),
        "recipients last": (last_link(first), hx, 'id="recipient-list"'),
        "search (1 hit)": ("/settings/sage/recipients?q=person+077777", hx, 'id="recipient-list"'),
        "search (none)": ("/settings/sage/recipients?q=nobody-at-all", hx, "Nobody matches"),
    }
    with app.app_context():
        engine = db.engine
    seen: list[str] = []
    listener = lambda *a, **k: seen.append(a[2])  # noqa: E731
    out = {name: {"ms": [], "queries": None} for name in targets}
    for name, (url, headers, expect) in targets.items():
        r = client.get(url, headers=headers)
        assert r.status_code == 200 and expect in r.text, (name, url, r.status_code, r.text[:300])
        event.listen(engine, "before_cursor_execute", listener)
        seen.clear()
        client.get(url, headers=headers)
        event.remove(engine, "before_cursor_execute", listener)
        out[name]["queries"] = len(seen)
        out[name]["url"] = url
    for rnd in range(rounds):
        order = list(targets) if rnd % 2 == 0 else list(targets)[::-1]
        for name in order:
            url, headers, _ = targets[name]
            t0 = time.perf_counter()
            for _ in range(per_round):
                client.get(url, headers=headers)
            out[name]["ms"].append((time.perf_counter() - t0) / per_round * 1000)
    for name in targets:
        out[name]["median_ms"] = statistics.median(out[name]["ms"])
    return out


def run(dbs: list[str], sizes: list[int], rounds: int, per_round: int) -> list[dict]:
    """Every (database, size) case, plus the ledger case at the largest size."""
    cases = [(n, 0) for n in sizes] + [(max(sizes), LEDGER_ROWS)]
    results = []
    work = tempfile.mkdtemp(prefix="company-size-")
    pg = PgCluster().start() if "postgresql" in dbs else None
    try:
        for dbkind in dbs:
            for k, (users, ledger) in enumerate(cases):
                inst = tempfile.mkdtemp(prefix="inst-", dir=work)
                if dbkind == "sqlite":
                    url = f"sqlite:///{inst}/panel.sqlite3"
                else:
                    url = pg.recreate_database(f"size_{k}").replace("postgresql://", "postgresql+psycopg://")
                t = time.perf_counter()
                app = build(url, inst, users, ledger)
                built = time.perf_counter() - t
                res = measure(app, rounds, per_round)
                with app.app_context():
                    from panel.extensions import db
                    from panel.redis_conn import stop_embedded

                    db.engine.dispose()
                    stop_embedded()  # the embedded Redis the app may have started
                row = {"db": dbkind, "users": users, "ledger": ledger, "build_s": round(built, 1), **{
                    name: {"ms": round(v["median_ms"], 2), "queries": v["queries"], "url": v["url"]}
                    for name, v in res.items()}}
                results.append(row)
                print(json.dumps({k2: (v2["ms"], v2["queries"]) if isinstance(v2, dict) else v2
                                  for k2, v2 in row.items()}), flush=True)
    finally:
        if pg is not None:
            pg.stop()
    return results


def report(results: list[dict]) -> tuple[str, list[str]]:
    """A markdown table and the target lines."""
    names = ["widget", "page", "recipients p1", "recipients last", "search (1 hit)", "search (none)"]
    lines = ["| db | users | ledger rows | " + " | ".join(f"{n} ms (queries)" for n in names) + " |",
             "|---|---:|---:|" + "---:|" * len(names)]
    verdicts = []
    for dbkind in dict.fromkeys(r["db"] for r in results):
        rows = [r for r in results if r["db"] == dbkind]
        base = next(r for r in rows if r["users"] == min(x["users"] for x in rows) and not r["ledger"])
        for r in rows:
            cells = []
            for n in names:
                cell = f"{r[n]['ms']:.2f} ({r[n]['queries']})"
                if n in ("widget", "page") and r is not base:
                    cell += f" ×{r[n]['ms'] / base[n]['ms']:.2f}"
                cells.append(cell)
            lines.append(f"| {dbkind} | {r['users']:,} | {r['ledger']:,} | " + " | ".join(cells) + " |")
        worst = {n: max(r[n]["ms"] / base[n]["ms"] for r in rows) for n in ("widget", "page")}
        for n, ratio in worst.items():
            verdicts.append(f"{dbkind}: {n} at most ×{ratio:.2f} of the 1-user figure — target ≤ {TARGET_RATIO}: "
                            f"{'MET' if ratio <= TARGET_RATIO else 'MISSED'}")
        big = [r for r in rows if r["users"] == max(x["users"] for x in rows)]
        for n in ("recipients last", "search (1 hit)", "search (none)"):
            ms = max(r[n]["ms"] for r in big)
            verdicts.append(f"{dbkind}: {n} at {big[0]['users']:,} users {ms:.2f} ms — target < "
                            f"{TARGET_LIST_MS:.0f} ms: {'MET' if ms < TARGET_LIST_MS else 'MISSED'}")
    return "\n".join(lines), verdicts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,1000,100000")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=10, help="requests per target per round")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--markdown", help="also write a RESULTS.md section to this file")
    args = ap.parse_args()
    m = machine()
    results = run(args.db.split(","), [int(x) for x in args.sizes.split(",")], args.rounds, args.per_round)
    table, verdicts = report(results)
    print()
    print(table)
    print()
    print("\n".join(verdicts))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.markdown:
        md = (f"\n## Benchmark 6 — cost by company size\n\n- command: `{command_line()}`\n"
              f"- in-process (Flask test client, one thread), admin signed in; medians of {args.rounds} interleaved "
              f"rounds × {args.per_round} requests\n" + machine_markdown(m) + "\n" + table + "\n\n"
              + "\n".join(f"- {v}" for v in verdicts) + "\n")
        Path(args.markdown).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
