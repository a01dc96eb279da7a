"""Flask CLI commands: create-company, create-user, seed-demo, doctor, serve, reencrypt-tokens, send-reminders,
set-password, deactivate-user, end-sessions; and Flask-Migrate's ``db``. Loaded when a command is first asked for
(panel/commands.py), so the processes that only serve never import Alembic."""
from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import click
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import Migrate
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from . import accounts, clock
from .crypto import rotate
from .extensions import db
from .jobs import enqueue
from .localtime import plural
from .models import Company, Role, SageToken, User
from .models_alerts import NotifyChannel
from .redis_conn import get_redis
from .reminders.sweep import run as run_sweep
from .serve import serve_command
from .sessions import end_all, end_everyone

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
migrate = Migrate()


def _checked(make, *args, **kwargs):
    """Run an accounts function, turning its AccountError into a clean CLI error."""
    try:
        return make(*args, **kwargs)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("create-company")
@with_appcontext
@click.argument("name")
@click.option("--timezone", default="Europe/London", show_default=True, help="IANA timezone name")
def create_company_command(name: str, timezone: str) -> None:
    """Create a company and print its id."""
    company = _checked(accounts.create_company, name, timezone)
    click.echo(f"Created company {company.id}: {company.name} ({company.timezone})")


@click.command("create-user")
@with_appcontext
@click.option("--company", "company_id", type=int, required=True, help="company id")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.option("--role", type=click.Choice(["admin", "user"]), default="user", show_default=True)
@click.option("--notify/--no-notify", default=False, help="Sage token reminders on or off")
@click.password_option()
def create_user_command(company_id: int, email: str, name: str, role: str, notify: bool, password: str) -> None:
    """Create a user in a company."""
    company = db.session.get(Company, company_id)
    if company is None:
        raise click.ClickException(f"No company with id {company_id}.")
    user = _checked(accounts.create_user, company, email, name, password, Role(role), notify)
    click.echo(f"Created {user.role} {user.email} in {company.name}")


UPGRADE = "run `flask --app wsgi db upgrade`"


def migration_problem() -> str | None:
    """Why the database does not match this release's migrations (with the command that fixes it), or None."""
    script = ScriptDirectory.from_config(_alembic_config())
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)  # not "Context impl SQLiteImpl."
    try:
        with db.engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        return f"the database can't be reached ({type(exc).__name__}: {str(exc.orig or exc).splitlines()[0]})"
    heads = set(script.get_heads())
    if not current:
        return f"the database has no tables yet: {UPGRADE}"
    if current != heads:
        return (f"the database is at migration {', '.join(sorted(current))} but this release needs "
                f"{', '.join(sorted(heads))}: {UPGRADE}")
    return None


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", current_app.extensions["migrate"].directory)
    return config


def _require_migrated() -> None:
    problem = migration_problem()
    if problem:
        raise click.ClickException(problem[0].upper() + problem[1:] + ".")


def _person(email: str) -> User:
    user = db.session.execute(select(User).filter_by(email=email.strip().lower())).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    return user


@click.command("set-password")
@with_appcontext
@click.option("--email", required=True)
@click.password_option()
def set_password_command(email: str, password: str) -> None:
    """Set a user's password; every session they have ends."""
    user = _person(email)
    ended = _checked(accounts.set_password, user, password)
    click.echo(f"Password changed for {user.email}; {plural(ended, 'session')} ended.")


@click.command("deactivate-user")
@with_appcontext
@click.option("--email", required=True)
def deactivate_user_command(email: str) -> None:
    """Deactivate a user: no sign-in, no reminders; every session they have ends."""
    user = _person(email)
    ended = accounts.deactivate(user)
    click.echo(f"Deactivated {user.email}; {plural(ended, 'session')} ended.")


@click.command("end-sessions")
@with_appcontext
@click.option("--email", default=None, help="end this user's sessions")
@click.option("--all", "everyone", is_flag=True, help="end every user's sessions")
def end_sessions_command(email: str | None, everyone: bool) -> None:
    """End the sessions of one user (--email) or of everyone (--all): they must sign in again."""
    if bool(email) == everyone:
        raise click.UsageError("Give exactly one of --email or --all.")
    if everyone:
        click.echo(f"Ended {plural(end_everyone(), 'session')}.")
        return
    user = _person(email)
    click.echo(f"Ended {plural(end_all(user.id), 'session')} of {user.email}.")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create Demo Ltd with one admin and three users (idempotent) and print every demo sign-in."""
    app = current_app._get_current_object()
    if app.config["PRODUCTION"]:
        raise click.ClickException("seed-demo creates accounts with a known password, so it does not run when "
                                   "PANEL_ENV=production.")
    _require_migrated()
    company = _checked(accounts.seed_demo, app)
    click.echo(f"Demo company: {company.name} (company id {company.id})")
    click.echo(f"Sign in at {app.config['PANEL_BASE_URL']}/login as any of these people, "
               f"each with the demo password: {accounts.demo_password(app)}")
    for person in accounts.demo_people(company):
        reminders = "reminders on" if person.notify_sage_token else "reminders off"
        click.echo(f"  {person.role:<5}  {person.email:<20}  {person.name} ({reminders})")


@click.command("doctor")
@with_appcontext
@click.option("--timeout", default=20, show_default=True, help="seconds to wait for a worker")
def doctor_command(timeout: int) -> None:
    """Check the database (and its migrations), Redis and a worker round trip; exit non-zero on the first failure."""
    _require_migrated()
    click.echo(f"database: migrated, {db.session.execute(select(func.count(User.id))).scalar_one()} users")
    click.echo(f"redis: {'ok' if get_redis().ping() else 'no answer'}")
    job = enqueue("panel.jobs.ping", uuid.uuid4().hex)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.get_status(refresh=True) == "finished":
            click.echo(f"worker: ok (pid {job.return_value()['pid']})")
            return
        if job.get_status() == "failed":
            raise click.ClickException("worker: the job failed; see the worker's log")
        time.sleep(0.2)
    raise click.ClickException(f"worker: no worker picked up the job within {timeout}s (is `rq worker` running?)")


@click.command("reencrypt-tokens")
@with_appcontext
def reencrypt_tokens_command() -> None:
    """Re-encrypt every stored Sage token and channel URL under the first key of PANEL_ENCRYPTION_KEYS (after adding
    a new key)."""
    count = 0
    for token in db.session.execute(select(SageToken)).scalars():
        token.access_token_enc = rotate(token.access_token_enc)
        token.refresh_token_enc = rotate(token.refresh_token_enc)
        count += 1
    urls = 0
    for channel in db.session.execute(select(NotifyChannel)).scalars():  # channel URLs hold secrets too
        channel.url_enc = rotate(channel.url_enc)
        urls += 1
    db.session.commit()
    click.echo(f"Re-encrypted {plural(count, 'token')} under the current key (and {plural(urls, 'channel URL')}); "
               "older keys can now be removed.")


@click.command("send-reminders")
@click.option("--queue/--inline", default=False, help="enqueue the send batches for the workers instead of sending here")
@with_appcontext
def send_reminders_command(queue: bool) -> None:
    """Run a reminder sweep now (operators): claim what is due and send it."""
    r = run_sweep(clock.now(), inline=not queue)
    click.echo(f"{plural(r['companies_due'], 'company', 'companies')} due, {r['claimed']} claimed, "
               f"{r['recovered']} recovered; " + (f"{plural(r['batches'], 'batch', 'batches')} queued" if queue else
               f"{r['sent']} sent, {r['failed']} failed, {r['skipped']} skipped, {r['retry']} to retry")
               + (f"; {r['uncertain']} uncertain (see the log)" if r["uncertain"] else ""))


def init_app(app: Flask) -> None:
    """Register the commands, and Flask-Migrate (its ``db`` group and ``app.extensions["migrate"]``)."""
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True, compare_type=True)
    for command in (create_company_command, create_user_command, seed_demo_command, doctor_command, serve_command,
                    reencrypt_tokens_command, send_reminders_command, set_password_command, deactivate_user_command,
                    end_sessions_command):
        app.cli.add_command(command)
