"""The app's ``flask`` commands, loaded when a command is first asked for (Click's lazy-loading group, with
``importlib``): ``panel/cli.py`` and Flask-Migrate's ``db`` group import Alembic, 11 MiB of heap that the processes
which serve (gunicorn's master and workers, the RQ worker) would otherwise hold without ever using it (bench/
RESULTS.md, benchmark 5). ``flask --app wsgi …``, ``app.test_cli_runner()`` and ``flask_migrate.upgrade()`` under an
app context work as before: the first command asked for, or the first look at ``app.extensions["migrate"]``, loads
``panel.cli``, whose ``init_app`` registers every command and Flask-Migrate."""
from __future__ import annotations

import importlib
import logging

from flask import Flask
from flask.cli import AppGroup
from werkzeug.local import LocalProxy

COMMANDS = "panel.cli"  # its init_app(app) registers the commands and Flask-Migrate (app.extensions["migrate"])


class LazyCommands(AppGroup):
    """``app.cli``: loads ``panel.cli`` (once) before listing or finding a command."""

    def __init__(self, app: Flask, **kwargs):
        super().__init__(**kwargs)
        self.app, self.loaded = app, False

    def load(self) -> None:
        """Register the real commands on this group and Flask-Migrate on the app, the first time only."""
        if not self.loaded:
            self.loaded = True
            # Alembic names each plugin it sets up, at INFO, when imported: now that this happens after logging is
            # configured (it used to happen before), that would put eight lines in front of every command's output.
            logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
            importlib.import_module(COMMANDS).init_app(self.app)

    def list_commands(self, ctx):
        """Every command's name (loading them)."""
        self.load()
        return super().list_commands(ctx)

    def get_command(self, ctx, cmd_name):
        """The command ``cmd_name`` (loading them)."""
        self.load()
        return super().get_command(ctx, cmd_name)


def init_app(app: Flask) -> None:
    """Install the lazy command group; stand in for Flask-Migrate's config until something reads it."""
    commands = LazyCommands(app, name=app.cli.name)
    for name, command in app.cli.commands.items():  # any registered before us
        commands.add_command(command, name)
    app.cli = commands

    def migrate_config():
        commands.load()  # Flask-Migrate's init_app replaces this proxy with its real config
        return app.extensions["migrate"]

    app.extensions["migrate"] = LocalProxy(migrate_config)
