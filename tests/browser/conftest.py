"""Browser fixtures: the app served over real HTTP in a thread, and Debian's Chromium driven by Playwright."""
from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from support import free_port, make_app

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


class LiveServer:
    """A real HTTP server running the app on 127.0.0.1 in a background thread."""

    def __init__(self, app):
        self.app = app
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_app(tmp_path, template_db, redis_server):
    """The app (not TESTING, so it behaves as deployed), flushed Redis."""
    app = make_app(tmp_path, template_db, redis_server, TESTING=False)
    from panel.redis_conn import get_redis

    get_redis(app).flushdb()
    return app


@pytest.fixture
def live_server(live_app):
    """The running server; ``.url`` is its base address."""
    with LiveServer(live_app) as server:
        yield server
    from panel import clock

    clock.freeze(None)
