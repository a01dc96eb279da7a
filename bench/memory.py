"""Benchmark 5 — memory of the whole `make run` tree: `flask serve` and everything it starts.

Starts `flask --app wsgi serve` exactly as `make run` does (after `db upgrade` and `seed-demo`), on a throwaway
instance under /tmp with its own embedded Redis, signs in and loads the Sage page and a few widget polls (so each
gunicorn worker has built its templates and connections), waits for the numbers to settle, then reads every
process of the tree from /proc: the serve parent (the supervisor `flask serve` replaces itself with), its children
(RQ worker + scheduler, RQ cron, gunicorn master and workers, any work-horse) and the embedded redis-server.

RSS counts shared pages once per process; PSS (proportional set size, /proc/<pid>/smaps_rollup) shares them out,
so the PSS of the tree adds up to the memory the tree really holds. Also reported: what the serve parent imports
(sys.modules count of a fresh `flask --app wsgi` process vs `python -c 'import flask'`).

Run: .venv/bin/python -m bench.memory [--markdown FILE] [--settle 8]
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from bench.common import (BIN, PASSWORD, ROOT, Instance, command_line, csrf_from, free_port, machine,
                          machine_markdown)

TARGET_PSS_MIB = 300


def mem(pid: int) -> dict:
    """RSS, PSS, USS (MiB) of one process, from /proc/<pid>/smaps_rollup."""
    out = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    for key, name in (("Rss", "rss"), ("Pss", "pss"), ("Private_Clean", "uss"), ("Private_Dirty", "uss")):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        if m:
            out[name] += int(m.group(1)) / 1024
    return out


def describe(proc: psutil.Process) -> str:
    """A short name for a process of the tree."""
    cmd = proc.cmdline()
    text = " ".join(cmd)
    if "redis-server" in text:
        return "redis-server (embedded)"
    if "panel.supervise" in text:  # `flask serve` after it replaced itself with the supervisor (same PID)
        return "serve supervisor (parent)"
    if " serve" in text and "flask" in text:
        return "flask serve (parent)"
    if "gunicorn" in text:
        return "gunicorn master" if proc.parent() and "gunicorn" not in " ".join(proc.parent().cmdline()) \
            else "gunicorn worker"
    if "rq" in text and "cron" in text:
        return "rq cron"
    if "rq" in text and "worker" in text:
        parent = proc.parent()
        if parent and "rq" in " ".join(parent.cmdline()) and "worker" in " ".join(parent.cmdline()):
            return "rq work-horse / scheduler (child)"
        return "rq worker"
    return cmd[0] if cmd else "?"


def tree(root: int, redis_socket: str | None) -> list[psutil.Process]:
    """The serve parent, all its descendants, and the embedded redis-server."""
    top = psutil.Process(root)
    procs = [top, *top.children(recursive=True)]
    if redis_socket:
        for p in psutil.process_iter(["cmdline"]):
            try:
                if "redis-server" in " ".join(p.info["cmdline"] or []) and p not in procs:
                    conf = " ".join(p.info["cmdline"])
                    if redis_socket in conf or _redis_conf_mentions(p, redis_socket):
                        procs.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return procs


def _redis_conf_mentions(p: psutil.Process, socket_path: str) -> bool:
    for arg in p.cmdline():
        if arg.endswith(".conf") and os.path.exists(arg):
            try:
                return socket_path in Path(arg).read_text()
            except OSError:
                return False
    return False


def module_counts() -> dict:
    """How many modules a bare `import flask` and the app (`create_app()`) load."""
    code = "import sys; {}; print(len(sys.modules))"
    bare = subprocess.run([sys.executable, "-c", code.format("import flask")], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    return {"import flask": int(bare.stdout.strip() or 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settle", type=float, default=8.0, help="seconds to wait after the warm-up requests")
    ap.add_argument("--markdown", help="also write a RESULTS.md section to this file")
    args = ap.parse_args()
    m = machine()
    with Instance(with_token=True) as inst:
        port = free_port()
        env = dict(inst.env, PANEL_BASE_URL=f"http://127.0.0.1:{port}", PORT=str(port))
        env.pop("REDIS_URL")  # `make run` uses the embedded Redis the app starts itself
        argv = [str(BIN / "flask"), "--app", "wsgi", "serve", "--port", str(port)]
        log = open(inst.dir / "serve.log", "wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if requests.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("flask serve did not come up:\n" + (inst.dir / "serve.log").read_text()[-3000:])
                time.sleep(0.3)
            # Warm up as a person would: sign in, the page, a few polls (each worker serves some of them).
            for _ in range(3):
                s = requests.Session()
                page = s.get(base + "/login", timeout=10)
                s.post(base + "/login", data={"email": "admin@example.com", "password": PASSWORD,
                                              "csrf_token": csrf_from(page.text)}, timeout=10)
                s.get(base + "/settings/sage", timeout=10)
                for _ in range(10):
                    s.get(base + "/settings/sage/widget", headers={"HX-Request": "true", "X-Panel-Poll": "1"},
                          timeout=10)
                for path in ("/static/htmx.min.js", "/static/panel.css", "/static/sage.js"):
                    s.get(base + path, timeout=10)
            time.sleep(args.settle)
            sock = str(inst.dir / "instance" / "redis.sock")
            rows = []
            for p in tree(proc.pid, sock):
                try:
                    rows.append((p.pid, describe(p), mem(p.pid)))
                except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                    continue
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    rows.sort(key=lambda r: -r[2]["pss"])
    total = {k: sum(r[2][k] for r in rows) for k in ("rss", "pss", "uss")}
    lines = ["| process | pid | RSS MiB | PSS MiB | USS MiB |", "|---|---:|---:|---:|---:|"]
    for pid, name, mm in rows:
        lines.append(f"| {name} | {pid} | {mm['rss']:.1f} | {mm['pss']:.1f} | {mm['uss']:.1f} |")
    lines.append(f"| **total ({len(rows)} processes)** | | **{total['rss']:.1f}** | **{total['pss']:.1f}** | "
                 f"**{total['uss']:.1f}** |")
    table = "\n".join(lines)
    ok = total["pss"] < TARGET_PSS_MIB
    summary = (f"whole `make run` tree: {total['rss']:.0f} MiB RSS, {total['pss']:.0f} MiB PSS — target PSS < "
               f"{TARGET_PSS_MIB} MiB: {'MET' if ok else 'MISSED'}")
    print(table)
    print()
    print(summary)
    if args.markdown:
        md = (f"\n## Benchmark 5 — memory of the `make run` tree\n\n- command: `{command_line()}`\n"
              f"- what: `flask --app wsgi serve` (as `make run`), throwaway instance, embedded Redis; after sign-in, "
              f"the page, 30 polls and the static files; {args.settle:.0f} s settle\n"
              + machine_markdown(m) + "\n" + table + "\n\n- " + summary + "\n")
        Path(args.markdown).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
