"""Benchmark 7 — tabs, not wrk's single cookie: many signed-in sessions polling the widget as the page's script does.

A browser tab polls /settings/sage/widget every 60 s with its own session cookie, the headers static/sage.js sets
(HX-Request, X-Panel-Poll and, once it has one, If-None-Match with the ETag of the widget it shows). This bench
makes N such sessions and replays them spaced like tabs:

1. A throwaway instance (migrated, seeded) gets C companies of N/C people each, every company with a stored
   token, and one server-side session row per person. Each session's cookie is the one a sign-in through the real
   form gives (taken from a real sign-in and re-signed with the app's own serializer for each session id and user).
2. gunicorn as `make run` starts it (2 workers × 4 threads, bench.wsgi_bench:app).
3. Warm-up: every session polls once without a validator, as a tab's first poll after the page loads, and keeps
   the ETag it was given (the server renders N widgets here).
4. wrk with a Lua script (bench/tabs.lua) sends each session's conditional poll in turn, paced to an open-loop rate
   of N_tabs / 60 requests per second (a tab count), and counts 200 / 304 answers.
5. Interleaved: the bare route (/_bench/bare, no cookie) at the same paced rate — server CPU per request from /proc
   for both (gunicorn master + workers), the noise-resistant cost figure. Then the tab count is stepped up and the
   p50/p99 latency of each step reported; the largest tab count at p99 < 50 ms is the capacity figure.

Targets (issue 13): bare CPU / poll CPU >= 0.7 for unchanged polls; tabs served at p99 < 50 ms on this 2-core box
>= 100,000 (today ~17k-30k).

Run: .venv/bin/python -m bench.tabs [--sessions 20000] [--tabs 20000,50000,100000,150000] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from bench.common import ADMIN, PASSWORD, Gunicorn, Instance, command_line, machine, machine_markdown, sign_in
from bench.widget_poll import cpu_seconds, parse_wrk, server_pids

LUA = Path(__file__).with_name("tabs.lua")
UA = "Mozilla/5.0 (panel bench tab)"
TARGET_RATIO = 0.7
TARGET_P99_MS = 50.0
TARGET_TABS = 100_000
POLL = "/settings/sage/widget"
BARE = "/_bench/bare"


def populate(inst: Instance, sessions: int, per_company: int) -> list[tuple[int, str]]:
    """Companies with tokens, one person per session, one session row each; returns (user id, session id)."""
    from panel import clock
    from panel.extensions import db
    from panel.heartbeat import SWEEP, beat
    from panel.localtime import window_start
    from panel.models import Company, SageToken, User, UserSession

    app = inst.app()
    out: list[tuple[int, str]] = []
    with app.app_context():
        now = clock.now()
        companies = max(1, sessions // per_company)
        db.session.execute(Company.__table__.insert(), [
            {"name": f"Tab Co {i}", "timezone": "Europe/London", "reminder_days": 28, "reminder_hour": 8,
             "sage_generation": 1, "created_at": now} for i in range(companies)])
        ids = db.session.execute(db.select(Company.id).where(Company.name.like("Tab Co %"))
                                 .order_by(Company.id)).scalars().all()
        # 40 days and half an hour left: the time shown changes only at the next whole hour.
        expires = now + timedelta(days=40, minutes=30)
        consented = expires - timedelta(days=90)
        db.session.execute(SageToken.__table__.insert(), [
            {"company_id": cid, "generation": 1, "connected_by_name": "Bench Admin", "consented_at": consented,
             "expires_at": expires, "state": "ok", "version": 1, "updated_at": now,
             "remind_from": window_start(expires, 28, "Europe/London")} for cid in ids])
        hash_ = db.session.execute(db.select(User.password_hash).filter_by(email=ADMIN)).scalar_one()
        rows = []
        for n in range(sessions):
            cid = ids[n % companies]
            rows.append({"company_id": cid, "email": f"tab{n:07d}@bench.example", "name": f"Tab Person {n:07d}",
                         "password_hash": hash_, "role": "admin" if n < companies else "user", "active": True,
                         "notify_sage_token": n % 2 == 0, "created_at": now})
        for start in range(0, len(rows), 5000):
            db.session.execute(User.__table__.insert(), rows[start:start + 5000])
        users = db.session.execute(db.select(User.id).where(User.email.like("tab%@bench.example"))
                                   .order_by(User.id)).scalars().all()
        srows = []
        for uid in users:
            sid = secrets.token_urlsafe(32)
            srows.append({"id": sid, "user_id": uid, "created_at": now, "address": "127.0.0.1", "user_agent": UA})
            out.append((uid, sid))
        for start in range(0, len(srows), 5000):
            db.session.execute(UserSession.__table__.insert(), srows[start:start + 5000])
        db.session.commit()
        # The scheduler of `make run` has swept just now (the bench runs no scheduler). Without a heartbeat the
        # widget shows "the scheduler has not run" and, by design, re-renders every minute until it clears.
        beat(SWEEP, now)
    return out


def cookies(inst: Instance, base_url: str, people: list[tuple[int, str]]) -> list[str]:
    """One session cookie per (user, session id): a real sign-in's cookie re-signed for each of them."""
    app = inst.app()
    real = sign_in(base_url)
    value = real.cookies.get("panel_session")
    ser = app.session_interface.get_signing_serializer(app)
    template = ser.loads(value)
    # flask-login's session identifier: the client address and User-Agent the tabs send.
    ident = hashlib.sha512(f"127.0.0.1|{UA}".encode()).hexdigest()
    out = []
    for uid, sid in people:
        data = dict(template, _user_id=str(uid), _sid=sid, _id=ident)
        out.append(ser.dumps(data))
    return out


def warm_up(port: int, jar: list[str], threads: int = 6) -> list[str]:
    """Each session's first poll (no validator); returns the ETag each was given."""
    etags: list[str | None] = [None] * len(jar)
    errors: list[str] = []

    def work(k: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(k, len(jar), threads):
            conn.request("GET", POLL, headers={"Cookie": f"panel_session={jar[i]}", "HX-Request": "true",
                                               "X-Panel-Poll": "1", "User-Agent": UA})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or b'id="token-widget"' not in body:
                errors.append(f"{resp.status} {body[:200]!r}")
                return
            etags[i] = resp.getheader("ETag") or ""

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise RuntimeError("warm-up poll failed: " + errors[0])
    return [e or "" for e in etags]


def wrk(url: str, rate: float, seconds: float, sessions_file: str | None, connections: int,
        threads: int = 2) -> dict:
    """One paced wrk run through bench/tabs.lua; latency percentiles and answer counts."""
    env = dict(os.environ, TABS_RATE=str(rate / threads), TABS_FILE=sessions_file or "", TABS_UA=UA,
               TABS_THREADS=str(threads))
    argv = ["wrk", f"-t{threads}", f"-c{max(connections, threads)}", f"-d{int(seconds)}s", "--timeout", "10s",
            "--latency", "-s", str(LUA), url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr or proc.stdout}")
    res = parse_wrk(proc.stdout)
    for key in ("s200", "s304", "sother"):
        m = [line for line in proc.stdout.splitlines() if line.startswith(key + " ")]
        res[key] = int(m[0].split()[1]) if m else 0
    res["raw"] = proc.stdout
    return res


def measured(g: Gunicorn, *args, **kwargs) -> dict:
    """A wrk run with the server's CPU time per request (gunicorn master + workers, from /proc)."""
    pids = server_pids(g.proc.pid)
    cpu0 = cpu_seconds(pids)
    res = wrk(*args, **kwargs)
    res["cpu_ms"] = (cpu_seconds(pids) - cpu0) * 1000 / max(1, res["requests"])
    return res


def conns_for(rate: float) -> int:
    """Enough connections that 250 ms of latency does not slow the offered rate."""
    return int(min(1000, max(16, rate * 0.25)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20000, help="distinct signed-in sessions (one person each)")
    ap.add_argument("--per-company", type=int, default=50, help="people per company")
    ap.add_argument("--tabs", default="20000,50000,100000,150000", help="tab counts to step through (rate = n/60)")
    ap.add_argument("--cost-rate", type=float, default=400, help="requests/s of the CPU-per-request comparison")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--markdown", help="also write a RESULTS.md section to this file")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    m = machine()
    env_extra = {"PANEL_IDLE_TIMEOUT_MINUTES": "600", "PANEL_ABSOLUTE_TIMEOUT_HOURS": "24"}
    tmp = tempfile.mkdtemp(prefix="tabs-bench-")
    try:
        with Instance(env=env_extra) as inst:
            t0 = time.monotonic()
            people = populate(inst, args.sessions, args.per_company)
            print(f"{len(people)} sessions in {len(people) // args.per_company} companies "
                  f"({time.monotonic() - t0:.1f} s)", flush=True)
            with Gunicorn(inst.env, workers=args.workers, threads=args.threads) as g:
                jar = cookies(inst, g.url, people)
                t0 = time.monotonic()
                etags = warm_up(g.port, jar)
                warm_s = time.monotonic() - t0
                with_etag = sum(1 for e in etags if e)
                print(f"warm-up: {len(jar)} first polls in {warm_s:.1f} s ({len(jar) / warm_s:.0f}/s); "
                      f"{with_etag} answers carried an ETag", flush=True)
                sessions_file = os.path.join(tmp, "sessions.tsv")
                with open(sessions_file, "w") as fh:
                    for c, e in zip(jar, etags):
                        fh.write(f"{c}\t{e}\n")
                poll_url, bare_url = g.url + POLL, g.url + BARE
                # Warm both paths (connections, templates) before measuring.
                wrk(bare_url, args.cost_rate, 5, None, conns_for(args.cost_rate))
                wrk(poll_url, args.cost_rate, 5, sessions_file, conns_for(args.cost_rate))
                print(f"load average before measuring: {' '.join(open('/proc/loadavg').read().split()[:3])}")
                cost = {"bare": [], "poll": []}
                for rnd in range(args.rounds):
                    for name in (("bare", "poll") if rnd % 2 == 0 else ("poll", "bare")):
                        res = measured(g, bare_url if name == "bare" else poll_url, args.cost_rate, args.duration,
                                       None if name == "bare" else sessions_file, conns_for(args.cost_rate))
                        cost[name].append(res)
                        print(f"cost round {rnd + 1} {name}: {res['requests'] / args.duration:7.1f} req/s "
                              f"CPU {res['cpu_ms']:.3f} ms/request p50 {res['p50']:.2f} p99 {res['p99']:.2f} ms "
                              f"200={res['s200']} 304={res['s304']} other={res['sother']}", flush=True)
                steps = []
                for tabs in [int(x) for x in args.tabs.split(",")]:
                    rate = tabs / 60
                    row = {"tabs": tabs, "rate": rate}
                    for name, url, f in (("poll", poll_url, sessions_file), ("bare", bare_url, None)):
                        res = measured(g, url, rate, args.duration, f, conns_for(rate))
                        row[name] = res
                        print(f"tabs {tabs:>7} ({rate:6.0f}/s) {name}: achieved {res['requests'] / args.duration:7.1f}"
                              f"/s p50 {res['p50']:.2f} p99 {res['p99']:.2f} ms CPU {res['cpu_ms']:.3f} ms/req "
                              f"200={res['s200']} 304={res['s304']} other={res['sother']} "
                              f"errors={res['socket_errors']}", flush=True)
                    steps.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if not args.rounds:  # --rounds 0: the capacity steps only
        cost = {k: [s[k] for s in steps] for k in ("bare", "poll")}
    med = {k: {f: statistics.median(r[f] for r in v) for f in ("cpu_ms", "p50", "p99")} for k, v in cost.items()}
    ratio = med["bare"]["cpu_ms"] / med["poll"]["cpu_ms"]
    per_round = [b["cpu_ms"] / p["cpu_ms"] for b, p in zip(cost["bare"], cost["poll"])]
    share304 = sum(r["s304"] for r in cost["poll"]) / max(1, sum(r["s200"] + r["s304"] + r["sother"]
                                                                 for r in cost["poll"]))
    served = [s["tabs"] for s in steps if s["poll"]["p99"] < TARGET_P99_MS and not s["poll"]["sother"]
              and s["poll"]["requests"] >= 0.9 * s["rate"] * args.duration]
    capacity = max(served) if served else 0
    lines = ["| tabs (polls/s) | poll p50 ms | poll p99 ms | poll CPU ms/req | 304 share | bare p50 ms | "
             "bare p99 ms | bare CPU ms/req |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        p, b = s["poll"], s["bare"]
        total = p["s200"] + p["s304"] + p["sother"]
        lines.append(f"| {s['tabs']:,} ({s['rate']:.0f}/s; achieved {p['requests'] / args.duration:.0f}) | "
                     f"{p['p50']:.2f} | {p['p99']:.2f} | {p['cpu_ms']:.3f} | {p['s304'] / max(1, total):.0%} | "
                     f"{b['p50']:.2f} | {b['p99']:.2f} | {b['cpu_ms']:.3f} |")
    table = "\n".join(lines)
    summary = (
        f"server CPU per request at {args.cost_rate:.0f} req/s (median of {args.rounds} interleaved rounds of "
        f"{args.duration:.0f} s): bare {med['bare']['cpu_ms']:.3f} ms, tab poll {med['poll']['cpu_ms']:.3f} ms — "
        f"ratio bare/poll {ratio:.2f} (per round {', '.join(f'{x:.2f}' for x in per_round)}) — target ≥ "
        f"{TARGET_RATIO}: {'MET' if ratio >= TARGET_RATIO else 'MISSED'}\n"
        f"answers to the conditional polls in the cost rounds: {share304:.1%} 304 Not Modified\n"
        f"tabs served at p99 < {TARGET_P99_MS:.0f} ms: {capacity:,} (largest step that met it) — target ≥ "
        f"{TARGET_TABS:,}: {'MET' if capacity >= TARGET_TABS else 'MISSED'}\n"
        f"sessions: {len(jar):,} distinct (one person each, {args.per_company} per company); each polls every "
        f"{len(jar):,}/rate s, i.e. every 60 s at {len(jar):,} tabs and more often above that\n"
        f"warm-up (first poll of every session, no validator): {len(jar) / warm_s:.0f} polls/s")
    print()
    print(table)
    print()
    print(summary)
    if args.markdown:
        md = (f"\n## Benchmark 7 — tabs, not wrk's single cookie\n\n- command: `{command_line()}`\n"
              f"- server: `{g.command()}`\n- load: `wrk -t2 -c<rate/4> -d{args.duration:.0f}s --latency -s "
              f"bench/tabs.lua` paced open-loop, each request the next session's conditional poll "
              f"(Cookie, HX-Request, X-Panel-Poll, If-None-Match)\n" + machine_markdown(m) + "\n" + table + "\n\n"
              + "\n".join(f"- {line}" for line in summary.splitlines()) + "\n")
        Path(args.markdown).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
