"""Helpers shared by the tests: environment, app factory on a seeded copy, signed-in sessions."""
from __future__ import annotations

import re
import shutil
import socket
import threading

from werkzeug.serving import make_server

from panel import create_app

PASSWORD = "correct horse battery"

# Two companies so every test can try to cross the line between them.
SEED = {
    "Demo Ltd": [("Alice Admin", "admin@example.com", "admin", True),
                 ("Ben Hughes", "ben@example.com", "user", False),
                 ("Chloe Patel", "chloe@example.com", "user", True)],
    "Other Co": [("Olga Other", "olga@other.example", "admin", True),
                 ("Oscar Other", "oscar@other.example", "user", True)],
}


def base_env(**extra) -> dict:
    """A clean, explicit environment so a developer's own variables never leak into tests."""
    env = {"PANEL_ENV": "development", "SECRET_KEY": "test-secret-key-" + "x" * 32,
           "PANEL_ENCRYPTION_KEYS": "4pQZGKTO0f31V3XK9I_P-XkMUkrD8e-EPEXqGQuBioU=",
           "PANEL_DEMO_PASSWORD": PASSWORD}
    env.update(extra)
    return env


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_app(tmp_path, template_db, redis_server, **config):
    """A fresh app on its own copy of the seeded database."""
    inst = tmp_path / "instance"
    inst.mkdir(exist_ok=True)
    db_path = inst / "panel.sqlite3"
    shutil.copy(template_db, db_path)
    cfg = {"INSTANCE_PATH": str(inst), "ENV_VARS": base_env(), "TESTING": True,
           "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}", "REDIS_URL": redis_server}
    cfg.update(config)
    return create_app(cfg)


def csrf_from(html: str) -> str:
    """The CSRF token embedded in a page (hidden input or hx-headers)."""
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'X-CSRFToken&#34;: &#34;([^&]+)&#34;', html) \
        or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)


class Session:
    """A signed-in test client with its CSRF token at hand."""

    def __init__(self, client, email: str, password: str = PASSWORD):
        self.client = client
        page = client.get("/login")
        resp = client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_from(page.text)})
        assert resp.status_code == 302, resp.text
        self.csrf = csrf_from(client.get("/settings/sage").text)

    def post(self, url, htmx=True, **kwargs):
        """POST with the CSRF header, as htmx would send it."""
        headers = kwargs.pop("headers", {})
        headers.setdefault("X-CSRFToken", self.csrf)
        if htmx:
            headers.setdefault("HX-Request", "true")
        return self.client.post(url, headers=headers, **kwargs)

    def get(self, url, htmx=False, **kwargs):
        """GET, optionally as an htmx request."""
        headers = kwargs.pop("headers", {})
        if htmx:
            headers.setdefault("HX-Request", "true")
        return self.client.get(url, headers=headers, **kwargs)


def sign_in(page, base_url: str, email: str = "admin@example.com", password: str = PASSWORD) -> None:
    """Sign in through the real form in a browser page."""
    page.goto(f"{base_url}/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/settings/sage")


class LiveServer:
    """A real HTTP server running the app on 127.0.0.1 in a background thread."""

    def __init__(self, app, port: int):
        self.app = app
        self.port = port
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request lines in test output
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(5)


def start_live(tmp_path, template_db, redis_server, **config) -> LiveServer:
    """An app served over real HTTP on a free port, PANEL_BASE_URL pointing at itself (use as a context manager)."""
    port = free_port()
    config.setdefault("TESTING", False)
    config.setdefault("PANEL_BASE_URL", f"http://127.0.0.1:{port}")
    app = make_app(tmp_path, template_db, redis_server, **config)
    from panel.redis_conn import get_redis

    get_redis(app).flushdb()
    return LiveServer(app, port)


class _FormParser:
    """Collects the forms of a page: action, method, hidden/text inputs and submit buttons."""

    def __init__(self):
        from html.parser import HTMLParser

        outer = self
        self.forms: list[dict] = []

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "form":
                    outer.forms.append({"action": a.get("action", ""), "method": (a.get("method") or "get").lower(),
                                        "fields": {}, "buttons": []})
                elif outer.forms and tag in ("input", "button"):
                    form = outer.forms[-1]
                    if tag == "button" or a.get("type") == "submit":
                        form["buttons"].append((a.get("name"), a.get("value", "")))
                    elif a.get("name"):
                        form["fields"][a["name"]] = a.get("value", "")

        self.parser = P()


def forms_of(html: str) -> list[dict]:
    """Every form of ``html`` as {action, method, fields, buttons}."""
    fp = _FormParser()
    fp.parser.feed(html)
    return fp.forms
