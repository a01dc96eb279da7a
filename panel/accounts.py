"""Companies and people: validated creation, and the demo company that `make run` seeds."""
from __future__ import annotations

import secrets
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import Company, Role, User
from .sessions import end_all

DEMO_COMPANY = "Demo Ltd"
DEMO_ADMIN = "admin@example.com"
DEMO_USERS = [
    ("Alice Admin", DEMO_ADMIN, Role.ADMIN),
    ("Ben Hughes", "ben@example.com", Role.USER),
    ("Chloe Patel", "chloe@example.com", Role.USER),
    ("Dan O'Neill", "dan@example.com", Role.USER),
]


class AccountError(ValueError):
    """A company or user could not be created; the message says why and is safe to show."""


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
        raise AccountError("Company name must be 1 to 200 characters.")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise AccountError(f"Unknown timezone {timezone!r}: use an IANA name such as Europe/London.") from exc
    company = Company(name=name, timezone=timezone)
    db.session.add(company)
    db.session.commit()
    return company


def create_user(company: Company, email: str, name: str, password: str, role: Role, notify: bool = False,
                password_hash: str | None = None) -> User:
    """Validate and add a user to ``company`` (``password_hash``, when given, is stored as it is)."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() or ord(c) < 32 for c in email):
        raise AccountError(f"{email!r} is not a valid email address.")
    _check_password(password)
    user = User(company=company, email=email, name=name.strip() or email, role=role.value, notify_sage_token=notify)
    if password_hash:
        user.password_hash = password_hash
    else:
        user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise AccountError(f"A user with email {email} already exists.") from exc
    return user


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise AccountError("Password must be at least 8 characters.")
    if len(password) > 1024:
        raise AccountError("Password must be at most 1024 characters.")


def set_password(user: User, password: str) -> int:
    """Change ``user``'s password and end every session they have (ASVS 7.4.3); returns how many ended."""
    _check_password(password)
    user.set_password(password)
    db.session.commit()
    return end_all(user.id)


def deactivate(user: User) -> int:
    """Deactivate ``user`` (no sign-in, no reminders) and end every session they have; returns how many ended."""
    user.active = False
    db.session.commit()
    return end_all(user.id)


def seed_demo(app: Flask) -> Company:
    """Create Demo Ltd with one admin and three users (idempotent); every one of them signs in with
    ``demo_password``, so both roles can be tried (a demo person whose password differs gets it back)."""
    password = demo_password(app)
    company = (db.session.execute(select(Company).filter_by(name=DEMO_COMPANY)).scalar_one_or_none()
               or create_company(DEMO_COMPANY))
    for name, email, role in DEMO_USERS:
        user = db.session.execute(select(User).filter_by(email=email)).scalar_one_or_none()
        if user is None:
            create_user(company, email, name, password, role, notify=role is Role.ADMIN)
        elif user.company_id == company.id and not user.check_password(password):
            user.set_password(password)
            db.session.commit()
    return company


def demo_people(company: Company) -> list[User]:
    """The demo company's seeded people, admin first, as seed-demo lists them."""
    emails = [email for _name, email, _role in DEMO_USERS]
    found = db.session.execute(select(User).where(User.company_id == company.id, User.email.in_(emails))).scalars()
    return sorted(found, key=lambda u: emails.index(u.email))
