"""Benchmark 2 — page weight: the signed-in Sage settings page and everything it loads, as it travels.

Starts the real app under gunicorn on a throwaway instance (Demo Ltd with a stored token), signs in as the admin,
fetches /settings/sage, then every resource the HTML references (stylesheets, icons, scripts, images, CSS url()s and
@imports, and htmx requests fired on load), as a browser asks (Accept-Encoding: br, gzip). Reports the bytes on the
wire (what the app itself sends: panel/assets.py compresses), each body gzipped at level 6 for comparison with the
40 KB target, and what a repeat view costs: static files with a year-long immutable lifetime are not requested at
all; others are revalidated.

Run: .venv/bin/python -m bench.page_weight
"""
from __future__ import annotations

import argparse
import gzip
import re
import sys
import zlib

import brotli
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from bench.common import Gunicorn, Instance, command_line, machine, machine_markdown, sign_in

TARGET_BYTES = 40 * 1024
PAGE = "/settings/sage"
LOAD_TRIGGERS = re.compile(r"(^|[\s,])(load|revealed|intersect)\b")


class Refs(HTMLParser):
    """Collects what a browser would fetch while loading the page."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (kind, url)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        rel = (a.get("rel") or "").lower().split()
        if tag == "link" and a.get("href") and {"stylesheet", "icon", "preload", "modulepreload", "manifest",
                                                   "apple-touch-icon"} & set(rel):
            self.refs.append(("link " + "/".join(rel), a["href"]))
        elif tag == "script" and a.get("src"):
            self.refs.append(("script", a["src"]))
        elif tag in ("img", "source", "video", "audio", "iframe", "embed") and a.get("src"):
            self.refs.append((tag, a["src"]))
        elif tag == "image" and (a.get("href") or a.get("xlink:href")):
            self.refs.append(("svg image", a.get("href") or a.get("xlink:href")))
        trigger = a.get("hx-trigger") or ""
        url = a.get("hx-get")
        if url and LOAD_TRIGGERS.search(trigger):
            self.refs.append((f"htmx on {trigger.strip()}", url))


def css_refs(css: str) -> list[tuple[str, str]]:
    """url(...) and @import targets of a stylesheet (data: URIs are inline, not requests)."""
    found = []
    for m in re.finditer(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""", css):
        url = (m.group(1) or m.group(2)).strip()
        if not url.startswith("data:"):
            found.append(("css url()", url))
    return found


def plain(resp, wire: bytes) -> bytes:
    """The body as the browser sees it (decoded from brotli, gzip or deflate)."""
    enc = resp.headers.get("Content-Encoding", "")
    if enc == "br":
        return brotli.decompress(wire)
    if enc == "gzip":
        return gzip.decompress(wire)
    if enc == "deflate":
        return zlib.decompress(wire)
    return wire


def gz(data: bytes) -> int:
    """Size of ``data`` gzipped at level 6."""
    return len(gzip.compress(data, compresslevel=6))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", help="also write a RESULTS.md section to this file")
    args = ap.parse_args()
    m = machine()
    rows = []
    with Instance() as inst, Gunicorn(inst.env) as g:
        s = sign_in(g.url)
        page = s.get(g.url + PAGE, headers={"Accept-Encoding": "br, gzip"}, timeout=10, stream=True)
        wire = page.raw.read(decode_content=False)
        text = plain(page, wire).decode()
        if page.status_code != 200 or 'id="token-widget"' not in text:
            raise RuntimeError(f"the Sage page did not load: {page.status_code}")
        rows.append({"kind": "document", "url": PAGE, "resp": page, "wire": len(wire), "body": text.encode()})
        parser = Refs()
        parser.feed(text)
        queue = list(parser.refs)
        seen = {PAGE}
        while queue:
            kind, ref = queue.pop(0)
            url = urljoin(g.url + PAGE, ref)
            if urlsplit(url).netloc != urlsplit(g.url).netloc:
                rows.append({"kind": kind, "url": ref, "resp": None})  # third party: listed, not fetched
                continue
            path = urlsplit(url).path + (("?" + urlsplit(url).query) if urlsplit(url).query else "")
            if path in seen:
                continue
            seen.add(path)
            headers = {"HX-Request": "true"} if kind.startswith("htmx") else {}
            resp = s.get(url, headers={**headers, "Accept-Encoding": "br, gzip"}, timeout=10, stream=True)
            wire = resp.raw.read(decode_content=False)
            if resp.status_code != 200:
                raise RuntimeError(f"{path}: {resp.status_code}")
            rows.append({"kind": kind, "url": path, "resp": resp, "wire": len(wire), "body": plain(resp, wire)})
            if "css" in resp.headers.get("Content-Type", ""):
                queue.extend(css_refs(rows[-1]["body"].decode()))
        # Repeat view: what happens to the static files the second time (cache hit, or conditional request)?
        for row in rows:
            resp = row["resp"]
            if resp is None or row["kind"] == "document":
                continue
            if "immutable" in resp.headers.get("Cache-Control", ""):
                row["revalidate"] = "cached"
                continue
            cond = {}
            if resp.headers.get("ETag"):
                cond["If-None-Match"] = resp.headers["ETag"]
            if resp.headers.get("Last-Modified"):
                cond["If-Modified-Since"] = resp.headers["Last-Modified"]
            row["revalidate"] = s.get(g.url + row["url"], headers=cond, timeout=10).status_code if cond else None

    table = ["| # | resource | kind | content type | bytes on the wire (app's own compression) | gzip -6 bytes | "
             "Cache-Control |",
             "|---:|---|---|---|---:|---:|---|"]
    total_raw = total_gz = 0
    for i, row in enumerate(rows, 1):
        resp = row["resp"]
        if resp is None:
            table.append(f"| {i} | {row['url']} | {row['kind']} | third party (not fetched) | | | |")
            continue
        body = row["body"]
        sent = row["wire"]
        row["sent"], row["gz"] = sent, gz(body)
        total_raw += sent
        total_gz += row["gz"]
        enc = resp.headers.get("Content-Encoding")
        ctype = resp.headers.get("Content-Type", "").split(";")[0] + (f" ({enc})" if enc else "")
        table.append(f"| {i} | `{row['url']}` | {row['kind']} | {ctype} | {sent:,} | {row['gz']:,} | "
                     f"{resp.headers.get('Cache-Control', '(none)')} |")
    table.append(f"| | **total: {len(rows)} requests** | | | **{total_raw:,}** | **{total_gz:,}** | |")
    ok = total_gz < TARGET_BYTES
    reval = [r for r in rows if r.get("revalidate") == 304]
    cached = [r for r in rows if r.get("revalidate") == "cached"]
    compressed = [r for r in rows if r["resp"] is not None and r["resp"].headers.get("Content-Encoding")]
    summary = [
        f"total gzipped (level 6): {total_gz:,} bytes = {total_gz / 1024:.1f} KiB in {len(rows)} requests "
        f"— target < 40 KB ({TARGET_BYTES:,} bytes): {'MET' if ok else 'MISSED'} "
        f"({total_gz / TARGET_BYTES * 100:.0f}% of the budget)",
        f"as sent by the app itself: {total_raw:,} bytes = {total_raw / 1024:.1f} KiB — "
        + ("some responses were compressed by the app" if compressed else
           "the app/gunicorn send no Content-Encoding: the gzip figure needs a compressing front server"),
        f"largest: {max((r for r in rows if r['resp'] is not None), key=lambda r: r['gz'])['url']}",
        f"repeat view: {len(cached)} of {len(rows) - 1} sub-resources are kept by the browser (fingerprinted URL, "
        f"immutable, a year) and not requested again; {len(reval)} revalidated with a conditional request (304)",
    ]
    print("\n".join(table))
    print()
    print("\n".join(summary))
    if args.markdown:
        md = (f"\n## Benchmark 2 — page weight\n\n- command: `{command_line()}`\n- server: `{g.command()}` "
              f"(bench instance, signed in as Demo Ltd's admin, Demo Ltd with a stored token)\n"
              f"- what: `GET {PAGE}` and every resource it references; each body gzipped with Python's "
              f"`gzip.compress(level=6)`\n" + machine_markdown(m) + "\n" + "\n".join(table) + "\n\n"
              + "\n".join(f"- {line}" for line in summary) + "\n")
        with open(args.markdown, "w") as fh:
            fh.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
