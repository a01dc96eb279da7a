"""What travels when the panel serves itself: compressed HTML and static files, fingerprinted static URLs kept by
browsers for a year (checked on the raw HTTP answers)."""
from __future__ import annotations

import gzip
import http.client
import re

import brotli
import pytest
from support import Session, base_env, start_live

from panel.assets import fingerprints


def raw_get(live, path: str, **headers) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def static_urls(html: str) -> list[str]:
    return [u.replace("&amp;", "&") for u in re.findall(r'(?:href|src)="(/static/[^"]+)"', html)]


def test_static_urls_are_fingerprinted_and_kept_for_a_year(live_server):
    status, _, body = raw_get(live_server, "/login")
    urls = static_urls(body.decode())
    assert urls and all(re.search(r"\?v=[0-9a-f]{12}$", u) for u in urls), urls
    for url in urls:
        status, headers, _ = raw_get(live_server, url)
        assert status == 200 and headers["cache-control"] == "public, max-age=31536000, immutable", url
    css = next(u for u in urls if "panel.css" in u)
    _, old, _ = raw_get(live_server, css.split("?")[0] + "?v=000000000000")  # an old page after a deploy
    _, bare, _ = raw_get(live_server, css.split("?")[0])
    assert old["cache-control"] == bare["cache-control"] == "no-cache"


def test_a_fingerprint_follows_the_content(tmp_path):
    (tmp_path / "a.js").write_text("one")
    before = fingerprints(str(tmp_path))["a.js"]
    (tmp_path / "a.js").write_text("two")
    assert fingerprints(str(tmp_path))["a.js"] != before and len(before) == 12


def test_pages_and_static_files_travel_compressed(live_server):
    signed = Session(live_server.app.test_client(), "admin@example.com")
    cookie = f"panel_session={signed.client.get_cookie('panel_session').value}"
    status, headers, body = raw_get(live_server, "/settings/sage", Cookie=cookie, **{"Accept-Encoding": "gzip, br"})
    assert status == 200 and headers["content-encoding"] == "br" and "Accept-Encoding" in headers["vary"]
    page = brotli.decompress(body).decode()
    assert 'id="token-widget"' in page and int(headers["content-length"]) == len(body) < len(page) / 3
    status, headers, body = raw_get(live_server, "/settings/sage", Cookie=cookie, **{"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip" and 'id="token-widget"' in gzip.decompress(body).decode()
    status, headers, body = raw_get(live_server, "/settings/sage", Cookie=cookie)
    assert "content-encoding" not in headers and 'id="token-widget"' in body.decode()
    js = next(u for u in static_urls(page) if "htmx.min.js" in u)
    status, headers, body = raw_get(live_server, js, **{"Accept-Encoding": "gzip, deflate, br"})
    assert status == 200 and headers["content-encoding"] == "br" and b"htmx" in brotli.decompress(body)


@pytest.fixture
def uncompressed(tmp_path, template_db, redis_server):
    with start_live(tmp_path, template_db, redis_server, ENV_VARS=base_env(PANEL_COMPRESS="0")) as server:
        yield server


def test_compression_can_be_left_to_a_front_server(uncompressed):
    status, headers, body = raw_get(uncompressed, "/login", **{"Accept-Encoding": "gzip, br"})
    assert status == 200 and "content-encoding" not in headers and b"<form" in body


def test_the_dark_theme_changes_colour_variables_only():
    """The browser audits (tests/browser) check the dark theme for the colour rules only; that holds while the
    dark block of panel.css sets nothing but custom properties."""
    css = open("static/panel.css").read()
    blocks = re.findall(r"@media \(prefers-color-scheme: dark\) \{(.*?)\n\}", css, re.S)
    assert len(blocks) == 1 and css.count("@media (prefers-color-scheme") == 1
    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", blocks[0])
    assert [selector.strip() for selector, _ in rules] == [":root"]
    declarations = [d.strip() for d in rules[0][1].split(";") if d.strip()]
    assert declarations and all(d.startswith("--") for d in declarations), declarations
