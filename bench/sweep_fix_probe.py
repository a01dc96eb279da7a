"""Evidence for the fixes proposed in benchmark 3 (sweep scaling). Measures, without changing app code:

1. the claim INSERT per row: as ``ledger.claim`` sends it (one multi-VALUES statement built with ``.values(list)``),
   as one executemany (``bench/sweep_whatif.py``), and on PostgreSQL as ``INSERT … SELECT … FROM unnest(arrays)``;
2. the open-window page query as ``sweep._open_windows`` writes it (keyset on company_id) against a keyset on
   (remind_from, company_id) with a scratch composite index, on 100k companies of which 600 have an open window,
   with the query plan of a middle page.

    .venv/bin/python bench/sweep_fix_probe.py          # ~2 min; SQLite in a temp dir + a private PostgreSQL cluster
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import sweep_scaling as S  # noqa: E402
from pg_cluster import PgCluster  # noqa: E402
from sweep_whatif import claim_executemany  # noqa: E402

UNNEST = """INSERT INTO reminder_delivery (company_id, user_id, generation, local_date, day_start, status, attempts,
                               claimed_at)
SELECT c, u, g, d, d, 'claimed', 0, :now FROM unnest(CAST(:c AS integer[]), CAST(:u AS integer[]),
       CAST(:g AS integer[]), CAST(:d AS date[])) AS t(c, u, g, d)
ON CONFLICT (company_id, user_id, day_start) DO NOTHING RETURNING id"""


def claim_unnest(dues, now):
    """PostgreSQL only: the claim as one statement with four array parameters."""
    from sqlalchemy import text

    from panel.extensions import db

    dues = list(dues)
    ids = db.session.scalars(text(UNNEST), {
        "now": now.astimezone(timezone.utc).replace(tzinfo=None), "c": [d.company_id for d in dues],
        "u": [d.user_id for d in dues], "g": [d.generation for d in dues], "d": [d.local_date for d in dues]}).all()
    db.session.commit()
    return ids


def probe_claim(label, pg):
    from panel.extensions import db
    from panel.reminders import ledger
    from panel.reminders.plan import Due

    comps = S.company_rows(1000, 1000, 0, seed=1)
    S.seed(db, comps, 20, lambda j: True)
    forms = [("ledger.claim as is", ledger.claim), ("executemany", claim_executemany)]
    if pg:
        forms.append(("INSERT…SELECT unnest()", claim_unnest))
    day = date(2026, 1, 1)
    for n in (2100, 5000, 10000):
        for name, fn in forms:
            times, err = [], None
            for _ in range(3):
                day += timedelta(days=1)
                start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)  # the ledger key's day start
                dues = [Due(c["id"], (c["id"] - 1) * 20 + j + 1, 1, day, start, False, 3)
                        for c in comps for j in range(20)][:n]
                db.session.remove()
                t = time.perf_counter()
                try:
                    ids = fn(dues, S.NOW)
                except Exception as exc:  # noqa: BLE001 - the bind-parameter limit, reported
                    db.session.rollback()
                    err = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
                    break
                times.append(time.perf_counter() - t)
                assert len(set(ids)) == n and fn(dues, S.NOW) == []  # a second claim of the same keys: nothing
            print(f"| {label} | {name} | {n:,} | " + (f"**{err}** | |" if err else
                  f"{min(times):.3f} (median {statistics.median(times):.3f}) | {min(times) / n * 1e6:.0f} |"), flush=True)


def probe_windows(label, pg):
    from sqlalchemy import select, tuple_

    from panel.extensions import db
    from panel.models import Company, SageToken
    from panel.reminders import sweep

    comps = S.company_rows(100000, 500, 100, seed=3)
    S.seed(db, comps, 10, lambda j: j % 2 == 0)

    def current():
        rows, after = [], 0
        while page := sweep._open_windows(S.NOW, after):
            rows += page
            after = page[-1].company_id
        return rows

    def keyset_query(after):
        q = (select(SageToken.company_id, SageToken.remind_from, SageToken.generation, SageToken.expires_at,
                    Company.timezone, Company.reminder_hour, Company.reminder_days)
             .join(Company, Company.id == SageToken.company_id).where(SageToken.remind_from <= S.NOW))
        if after:
            q = q.where(tuple_(SageToken.remind_from, SageToken.company_id) > tuple_(*after))
        return q.order_by(SageToken.remind_from, SageToken.company_id).limit(sweep.COMPANY_BATCH)

    def keyset():
        rows, after = [], None
        while page := db.session.execute(keyset_query(after)).all():
            rows += page
            after = (page[-1].remind_from, page[-1].company_id)
        return rows

    def best(fn):
        times = []
        for _ in range(3):
            db.session.remove()
            t = time.perf_counter()
            rows = fn()
            times.append(time.perf_counter() - t)
        return rows, min(times)

    a, ta = best(current)
    with db.engine.begin() as c:
        c.exec_driver_sql("CREATE INDEX ix_probe_remind_from_company ON sage_token (remind_from, company_id)")
        if pg:
            c.exec_driver_sql("ANALYZE sage_token")
    b, tb = best(keyset)
    assert sorted(r.company_id for r in a) == sorted(r.company_id for r in b) and len(a) == 600
    print(f"| {label} | 100,000 companies, 600 open windows | as is: {ta * 1000:.1f} ms | keyset on (remind_from, "
          f"company_id): {tb * 1000:.1f} ms |")
    mid = sorted(b, key=lambda r: (r.remind_from, r.company_id))[499]
    sql = str(keyset_query((mid.remind_from, mid.company_id)).compile(db.engine, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " if pg else "EXPLAIN QUERY PLAN "
    with db.engine.connect() as c:
        plan = [r[0] if pg else r[3] for r in c.exec_driver_sql(prefix + sql.replace("%", "%%")).all()]
    print("    keyset page plan: " + "\n    ".join(plan))


def main():
    from flask_migrate import upgrade

    from panel import create_app
    from panel.extensions import db

    work = tempfile.mkdtemp(prefix="sweep-probe-")
    pg = PgCluster()
    try:
        pg.start()
        n = 0
        for label in ("sqlite", "postgresql"):
            for probe in (probe_claim, probe_windows):
                n += 1
                url = pg.recreate_database(f"probe{n}") if label == "postgresql" else f"sqlite:///{work}/p{n}.sqlite3"
                app = create_app({"INSTANCE_PATH": tempfile.mkdtemp(dir=work), "ENV_VARS": S.ENV,
                                  "SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": ""})
                with app.app_context():
                    upgrade()
                    probe(label, label == "postgresql")
                    db.session.remove()
                    db.engine.dispose()
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
