"""Driving the panel and the demo SageID over real HTTP with ``requests``, as a browser would."""
from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import requests
from support import PASSWORD, forms_of

DEMO_EMAIL, DEMO_PASSWORD = "sage.demo@example.com", "demo-sage-200"


def panel_sign_in(base: str, email: str = "admin@example.com") -> requests.Session:
    """A requests session signed in to the panel through its form."""
    http = requests.Session()
    form = forms_of(http.get(f"{base}/login").text)[0]
    resp = http.post(f"{base}/login", data={**form["fields"], "email": email, "password": PASSWORD})
    assert resp.url == f"{base}/settings/sage", resp.text
    return http


def submit(http, page: requests.Response, button: str | None = None, **fields) -> requests.Response:
    """Submit the first form of ``page`` (the one holding ``button`` when given) without following redirects."""
    for form in forms_of(page.text):
        values = dict(form["fields"], **fields)
        names = {value: name for name, value in form["buttons"] if name}
        if button is None or button in names:
            if button:
                values[names[button]] = button
            return http.post(urljoin(page.url, form["action"]), data=values, allow_redirects=False)
    raise AssertionError(f"no form with {button!r} on {page.url}")


def grant_redirect(http, base: str, choice: str = "grant") -> str:
    """Login Now → demo sign-in → consent → Grant/Deny; returns the callback URL Sage ID sends the browser to."""
    page = http.get(f"{base}/settings/sage/connect")
    assert urlsplit(page.url).path == "/demo-sageid/authorize", page.url
    if "Grant" not in page.text:
        resp = submit(http, page, email=DEMO_EMAIL, password=DEMO_PASSWORD)
        page = http.get(urljoin(page.url, resp.headers["Location"])) if resp.is_redirect else resp
    assert "Grant" in page.text and "Deny" in page.text
    resp = submit(http, page, choice)
    assert resp.status_code in (302, 303), resp.text
    return resp.headers["Location"]
