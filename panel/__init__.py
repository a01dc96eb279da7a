"""Sage settings panel: the application factory."""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from .config import ConfigError, load_config, production_problems

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
    os.makedirs(app.instance_path, exist_ok=True)
    env = overrides.pop("ENV_VARS", None)
    app.config.update(load_config(app.instance_path, env))
    app.config.update(overrides)
    problems = production_problems(app.config)
    if problems:
        raise ConfigError("Refusing to start in production: " + "; ".join(problems) + ".")

    if app.config["PANEL_TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["PANEL_TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)

    from . import busy
    from .extensions import csrf, db, htmx, mail, migrate

    busy.configure_engine(app.config)  # bounded lock waits, for the final database URI
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    htmx.init_app(app)
    app.config.setdefault("MAIL_SUPPRESS_SEND", False)
    mail.init_app(app)

    from . import auth, cli, demo_sageid, errors, reminders, sage, security, sessions

    security.init_app(app)
    auth.init_app(app)
    sessions.init_app(app)
    errors.init_app(app)
    demo_sageid.init_app(app)
    sage.init_app(app)
    reminders.init_app(app)
    cli.init_app(app)
    return app


__all__ = ["create_app", "ConfigError"]
