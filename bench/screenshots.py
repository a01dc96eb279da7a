"""Regenerate the screenshots in docs/screenshots/ from the running app, so they never drift from the UI.

    make screenshots                        # or: .venv/bin/python -m bench.screenshots [--out DIR]

Builds a throwaway instance under /tmp (db upgrade, seed-demo), starts everything with `flask serve` exactly as
`make run` does (embedded Redis, worker, cron, gunicorn on 127.0.0.1), then drives Debian's Chromium through
Playwright: sign-in, the Sage page not connected, Login Now through the demo Sage ID (sign-in, consent, Grant),
connected with the connection checked, renew soon, dark theme, 360 px, and My notifications as an ordinary user.
Stops every process and removes the instance at the end. Loopback only.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "screenshot-demo-password"
SAGE_ID = ("sage.demo@example.com", "demo-sage-200")  # the demo Sage ID account (printed on its sign-in page)
CHROMIUM = os.environ.get("PANEL_CHROMIUM", "/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 900}


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(instance: Path, port: int) -> subprocess.Popen:
    """Migrate, seed and start `flask serve`; returns once the panel answers /healthz."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY",
                                                            "PANEL_ENCRYPTION_KEYS", "SAGE_CLIENT_ID")}
    env.update(PANEL_INSTANCE_PATH=str(instance), PANEL_DEMO_PASSWORD=PASSWORD, PORT=str(port),
               PANEL_BASE_URL=f"http://127.0.0.1:{port}")
    flask = [str(BIN / "flask"), "--app", "wsgi"]
    for step in (["db", "upgrade"], ["seed-demo"]):
        subprocess.run(flask + step, env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
    proc = subprocess.Popen(flask + ["serve", "--port", str(port), "--workers", "1"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                return proc
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("flask serve did not come up")
        time.sleep(0.3)


def sign_in(page, base: str, email: str = "admin@example.com") -> None:
    """Sign in through the real form."""
    page.goto(f"{base}/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/settings/sage")


def shoot(browser, base: str, out: Path) -> list[str]:
    """Walk the screens and write the PNGs; returns their names."""
    written: list[str] = []

    def save(page, name: str, full_page: bool = True) -> None:
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / name), full_page=full_page)
        written.append(name)

    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    page = context.new_page()
    page.goto(f"{base}/login")
    save(page, "sign-in.png", full_page=False)
    sign_in(page, base)
    save(page, "sage-not-connected.png")

    with page.expect_popup() as popup_info:
        page.locator("#token-widget").get_by_role("button", name="Login Now").click()
    popup = popup_info.value
    popup.wait_for_load_state()
    save(popup, "sageid-sign-in.png", full_page=False)
    popup.get_by_label("Email address").fill(SAGE_ID[0])
    popup.get_by_label("Password").fill(SAGE_ID[1])
    popup.get_by_role("button", name="Sign in").click()
    expect(popup.get_by_role("button", name="Grant")).to_be_visible()
    save(popup, "sageid-consent.png", full_page=False)
    with popup.expect_event("close", timeout=15000):
        popup.get_by_role("button", name="Grant").click()
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Connected")
    page.locator("#sage-connection").get_by_role("button", name="Check connection").click()
    expect(page.get_by_test_id("sites")).to_be_visible()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    save(page, "sage-connected.png")

    days = page.get_by_label("Reminder days")  # a 90-day reminder window: the token is inside it at once
    days.fill("90")
    days.press("Enter")
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Renew soon")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    save(page, "sage-renew-soon.png")
    days = page.get_by_label("Reminder days")
    days.fill("28")
    days.press("Enter")
    expect(page.locator("#token-widget").get_by_test_id("token-state")).to_have_text("Connected")
    context.close()

    dark = browser.new_context(viewport=DESKTOP, color_scheme="dark")
    page = dark.new_page()
    sign_in(page, base)
    save(page, "sage-dark.png")
    dark.close()

    phone = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2)
    page = phone.new_page()
    sign_in(page, base)
    save(page, "sage-mobile.png")
    phone.close()

    user = browser.new_context(viewport=DESKTOP)
    page = user.new_page()
    sign_in(page, base, "ben@example.com")
    page.get_by_role("link", name="My notifications").first.click()
    save(page, "my-notifications.png", full_page=False)
    user.close()
    return written


def main() -> None:
    """Start the app, take every screenshot into --out, stop the app."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder for the PNGs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    instance = Path(tempfile.mkdtemp(prefix="panel-screens-"))
    port = free_port()
    proc = start(instance, port)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                written = shoot(browser, f"http://127.0.0.1:{port}", out)
            finally:
                browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # flask serve stops its children and the embedded Redis
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(instance, ignore_errors=True)
    print(f"wrote {len(written)} screenshots to {out}: {', '.join(written)}")


if __name__ == "__main__":
    main()
