"""Factory and configuration: development defaults, production refusal of unsafe settings."""
from __future__ import annotations

import os
import stat

import pytest
from cryptography.fernet import Fernet

from panel import ConfigError, create_app

GOOD_PRODUCTION = {
    "PANEL_ENV": "production",
    "SECRET_KEY": "s" * 48,
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
