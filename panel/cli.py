"""Flask CLI commands: create-company, create-user, seed-demo, doctor, serve, reencrypt-tokens, send-reminders."""
from __future__ import annotations

import time
import uuid

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from . import accounts, clock
from .crypto import rotate
from .extensions import db
from .jobs import enqueue
from .localtime import plural
from .models import Company, Role, SageToken, User
from .redis_conn import get_redis
from .reminders.sweep import run as run_sweep
from .serve import serve_command


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


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create Demo Ltd with one admin and three users (idempotent) and print the admin sign-in."""
    app = current_app._get_current_object()
    _checked(accounts.seed_demo, app)
    click.echo(f"Demo company: {accounts.DEMO_COMPANY}. "
               f"Sign in as {accounts.DEMO_ADMIN} with password: {accounts.demo_password(app)}")


@click.command("doctor")
@with_appcontext
@click.option("--timeout", default=20, show_default=True, help="seconds to wait for a worker")
def doctor_command(timeout: int) -> None:
    """Check the database, Redis and a worker round trip; exit non-zero on the first failure."""
    click.echo(f"database: {db.session.execute(select(func.count(User.id))).scalar_one()} users")
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
    """Re-encrypt every stored Sage token under the first key of PANEL_ENCRYPTION_KEYS (after adding a new key)."""
    count = 0
    for token in db.session.execute(select(SageToken)).scalars():
        token.access_token_enc = rotate(token.access_token_enc)
        token.refresh_token_enc = rotate(token.refresh_token_enc)
        count += 1
    db.session.commit()
    click.echo(f"Re-encrypted {plural(count, 'token')} under the current key; older keys can now be removed.")


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
    """Register the commands."""
    for command in (create_company_command, create_user_command, seed_demo_command, doctor_command, serve_command,
                    reencrypt_tokens_command, send_reminders_command):
        app.cli.add_command(command)
