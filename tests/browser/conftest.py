"""Browser fixtures: the app served over real HTTP in a thread, and Debian's Chromium driven by Playwright."""
from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("PANEL_CHROMIUM", "/usr/bin/chromium")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch the system Chromium (no Playwright browser download); CI installs it with apt."""
    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} not found: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    }




@pytest.fixture(scope="session")
def _shared_context(browser, browser_context_args):
    """One browser context for every test of this process that takes ``page``.

    A fresh context costs Chromium about twice what a fresh page in a warm one does (bench/RESULTS.md, "browser
    tests"); each test still gets its own page, and its live server's own port, hence its own origin with empty
    storage and cache. Cookies are keyed by host, not port, so they are cleared after each test.
    """
    context = browser.new_context(**browser_context_args)
    yield context
    context.close()


@pytest.fixture
def context(_shared_context):
    """The shared context, handed back clean: the test's pages closed, no cookies, no permissions granted."""
    yield _shared_context
    for page in list(_shared_context.pages):
        page.close()
    _shared_context.clear_cookies()
    _shared_context.clear_permissions()
