"""Sage settings panel: the application factory."""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import ConfigError, load_config, private_sqlite_file, production_problems
from .extensions import csrf, db, htmx, mail, migrate

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, error handlers and security headers."""
    overrides = dict(config or {})
    instance_path = (overrides.pop("INSTANCE_PATH", None) or os.environ.get("PANEL_INSTANCE_PATH")
                     or str(ROOT / "instance"))
    app = Flask(
        __name__,
        instance_path=os.path.abspath(instance_path),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)  # secrets, the database, Redis' files
    env = overrides.pop("ENV_VARS", None)
    app.config.update(load_config(app.instance_path, env))
    app.config.update(overrides)
    problems = production_problems(app.config)
    if problems:
        raise ConfigError("Refusing to start in production: " + "; ".join(problems) + ".")

    if app.config["PANEL_TRUSTED_PROXIES"]:
        n = app.config["PANEL_TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)

    # Imported here, as flaskr does: the parts import their siblings through this package, so the package
    # imports them only once an app is being built (no import circle through panel/__init__).
    from . import (
        auth,
        busy,
        cli,
        demo_sageid,
        errors,
        render,
        security,
        sessions,
        settings,
    )
    from .reminders import unsubscribe

    busy.configure_engine(app.config)  # bounded lock waits, for the final database URI
    private_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    htmx.init_app(app)
    app.config.setdefault("MAIL_SUPPRESS_SEND", False)
    mail.init_app(app)

    for part in (security, render, auth, sessions, errors, demo_sageid, settings, unsubscribe, cli):
        part.init_app(app)
    return app


__all__ = ["create_app", "ConfigError"]
