"""The application factory: ``create_app`` (``from panel import create_app``, loaded on first use)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import (
    assets,
    auth,
    busy,
    commands,
    demo_sageid,
    errors,
    health,
    logs,
    metrics,
    render,
    security,
    sessions,
    settings,
    versions,
)
from .config import ConfigError, load_config, production_problems
from .extensions import csrf, db, htmx, mail
from .instance import ensure_instance, private_sqlite_file
from .reminders import unsubscribe

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, error handlers and security headers."""
    logs.configure()  # before anything logs: one format in every process
    overrides = dict(config or {})
    instance_path = (overrides.pop("INSTANCE_PATH", None) or os.environ.get("PANEL_INSTANCE_PATH")
                     or str(ROOT / "instance"))
    app = Flask(
        "panel",  # the package: the app's name, logger and root path, as when this lived in panel/__init__.py
        instance_path=os.path.abspath(instance_path),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    env = overrides.pop("ENV_VARS", None)
    app.config.update(load_config(app.instance_path, env))
    app.config.update(overrides)
    problems = production_problems(app.config)
    if problems:
        raise ConfigError("Refusing to start in production: " + "; ".join(problems) + ".")

    if not _listing_help():
        ensure_instance(app.config, app.instance_path)  # the folder (0700), and development secrets on first start
        private_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])

    if app.config["PANEL_TRUSTED_PROXIES"]:
        n = app.config["PANEL_TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)

    busy.configure_engine(app.config)  # bounded lock waits, for the final database URI
    db.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    app.config.setdefault("MAIL_SUPPRESS_SEND", False)
    mail.init_app(app)

    for part in (logs, security, render, assets, auth, sessions, versions, errors, health, metrics, demo_sageid,
                 settings, unsubscribe, commands):
        part.init_app(app)
    return app


def _listing_help() -> bool:
    """True while `flask … --help` builds the app only to list its commands: then nothing may be written."""
    return click.get_current_context(silent=True) is not None and "--help" in sys.argv[1:]


__all__ = ["ConfigError", "create_app"]
