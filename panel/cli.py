"""Flask CLI commands: create-company, create-user, seed-demo, doctor."""
from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from flask.cli import with_appcontext
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import Company, Role, User

DEMO_COMPANY = "Demo Ltd"
DEMO_ADMIN = "admin@example.com"
DEMO_USERS = [
    ("Alice Admin", DEMO_ADMIN, Role.ADMIN),
    ("Ben Hughes", "ben@example.com", Role.USER),
    ("Chloe Patel", "chloe@example.com", Role.USER),
    ("Dan O'Neill", "dan@example.com", Role.USER),
]


def _fail(message: str):
    raise click.ClickException(message)


def demo_password(app: Flask) -> str:
    """PANEL_DEMO_PASSWORD, else the generated one kept in the instance folder (0600)."""
    if app.config.get("PANEL_DEMO_PASSWORD"):
        return app.config["PANEL_DEMO_PASSWORD"]
    path = Path(app.instance_path) / "demo_password"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


def create_company(name: str, timezone: str = "Europe/London") -> Company:
    """Validate and add a company."""
    name = name.strip()
    if not name or len(name) > 200:
        _fail("Company name must be 1 to 200 characters.")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(f"Unknown timezone {timezone!r}: use an IANA name such as Europe/London.")
    company = Company(name=name, timezone=timezone)
    db.session.add(company)
    db.session.commit()
    return company


def create_user(company: Company, email: str, name: str, password: str, role: Role, notify: bool = False) -> User:
    """Validate and add a user to ``company``."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() or ord(c) < 32 for c in email):
        _fail(f"{email!r} is not a valid email address.")
    if len(password) < 8:
        _fail("Password must be at least 8 characters.")
    user = User(company=company, email=email, name=name.strip() or email, role=role.value, notify_sage_token=notify)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        _fail(f"A user with email {email} already exists.")
    return user


@click.command("create-company")
@with_appcontext
@click.argument("name")
@click.option("--timezone", default="Europe/London", show_default=True, help="IANA timezone name")
def create_company_command(name: str, timezone: str) -> None:
    """Create a company and print its id."""
    company = create_company(name, timezone)
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
    company = db.session.get(Company, company_id) or _fail(f"No company with id {company_id}.")
    user = create_user(company, email, name, password, Role(role), notify)
    click.echo(f"Created {user.role} {user.email} in {company.name}")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create Demo Ltd with one admin and three users (idempotent) and print the admin sign-in."""
    password = demo_password(current_app)
    company = Company.query.filter_by(name=DEMO_COMPANY).first() or create_company(DEMO_COMPANY)
    for name, email, role in DEMO_USERS:
        user = User.query.filter_by(email=email).first()
        if user is None:
            pw = password if role is Role.ADMIN else secrets.token_urlsafe(12)
            create_user(company, email, name, pw, role, notify=role is Role.ADMIN)
        elif role is Role.ADMIN and current_app.config.get("PANEL_DEMO_PASSWORD") and not user.check_password(password):
            user.set_password(password)
            db.session.commit()
    click.echo(f"Demo company: {DEMO_COMPANY}. Sign in as {DEMO_ADMIN} with password: {password}")


@click.command("doctor")
@with_appcontext
@click.option("--timeout", default=20, show_default=True, help="seconds to wait for a worker")
def doctor_command(timeout: int) -> None:
    """Check the database, Redis and a worker round trip; exit non-zero on the first failure."""
    from .queue import enqueue
    from .redis_conn import get_redis

    click.echo(f"database: {db.session.query(User).count()} users")
    click.echo(f"redis: {'ok' if get_redis().ping() else 'no answer'}")
    token = uuid.uuid4().hex
    job = enqueue("panel.jobs.ping", token)
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.get_status(refresh=True) == "finished":
            click.echo(f"worker: ok (pid {job.return_value()['pid']})")
            return
        if job.get_status() == "failed":
            _fail("worker: the job failed; see the worker's log")
        time.sleep(0.2)
    _fail(f"worker: no worker picked up the job within {timeout}s (is `rq worker` running?)")


@click.command("reencrypt-tokens")
@with_appcontext
def reencrypt_tokens_command() -> None:
    """Re-encrypt every stored Sage token under the first key of PANEL_ENCRYPTION_KEYS (after adding a new key)."""
    from .crypto import rotate
    from .models import SageToken

    count = 0
    for token in SageToken.query.all():
        token.access_token_enc = rotate(token.access_token_enc)
        token.refresh_token_enc = rotate(token.refresh_token_enc)
        count += 1
    db.session.commit()
    click.echo(f"Re-encrypted {count} token(s) under the current key; older keys can now be removed.")


@click.command("send-reminders")
@click.option("--queue/--inline", default=False, help="enqueue the send batches for the workers instead of sending here")
@with_appcontext
def send_reminders_command(queue: bool) -> None:
    """Run a reminder sweep now (operators): claim what is due and send it."""
    from . import clock
    from .reminders.sweep import run

    r = run(clock.now(), inline=not queue)
    click.echo(f"{r['companies_due']} compan{'y' if r['companies_due'] == 1 else 'ies'} due, {r['claimed']} claimed, "
               f"{r['recovered']} recovered; " + (f"{r['batches']} batch(es) queued" if queue else
               f"{r['sent']} sent, {r['failed']} failed, {r['skipped']} skipped, {r['retry']} to retry"))


def init_app(app: Flask) -> None:
    """Register the commands."""
    from .serve import serve_command

    for command in (create_company_command, create_user_command, seed_demo_command, doctor_command, serve_command,
                    reencrypt_tokens_command, send_reminders_command):
        app.cli.add_command(command)
