"""The token store: one current Sage token per company, secrets encrypted, saves guarded by compare-and-swap."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, update

from .. import audit, clock, events
from ..audit import Action
from ..crypto import encrypt
from ..extensions import db
from ..localtime import format_local, window_start
from ..models import Company, SageToken, TokenState, User


def current(company_id: int) -> SageToken | None:
    """The company's current token, read fresh from the database."""
    return db.session.execute(
        db.select(SageToken).filter_by(company_id=company_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _seconds(value) -> int | None:
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def token_expiry(consented_at: datetime, response: dict, lifetime_days: int) -> datetime:
    """Consent time + the configured lifetime, unless the response states ``refresh_token_expires_in``."""
    stated = _seconds(response.get("refresh_token_expires_in"))
    if stated is not None:
        return consented_at + timedelta(seconds=stated)
    return consented_at + timedelta(days=lifetime_days)


def access_expiry(now: datetime, response: dict) -> datetime | None:
    """When the access token in ``response`` stops working (None when the response does not say)."""
    seconds = _seconds(response.get("expires_in"))
    return now + timedelta(seconds=seconds) if seconds is not None else None


def save_new(company: Company, user: User, response: dict, now: datetime) -> SageToken:
    """Store the token of a successful Login Now as the company's new generation; audit it."""
    if not response.get("access_token"):
        raise ValueError("token response has no access_token")
    # Lock the company row (PostgreSQL) so two simultaneous Login Nows get distinct generations.
    locked = db.session.execute(
        db.select(Company).filter_by(id=company.id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    locked.sage_generation += 1
    token = current(company.id)
    renewed = token is not None
    if token is None:
        token = SageToken(company_id=company.id, version=0)
    token.generation = locked.sage_generation
    token.connected_by_id = user.id
    token.connected_by_name = user.name
    token.consented_at = now
    token.expires_at = token_expiry(now, response, current_app.config["SAGE_TOKEN_LIFETIME_DAYS"])
    token.remind_from = window_start(token.expires_at, locked.reminder_days, locked.timezone)
    token.access_token_enc = encrypt(response["access_token"])
    token.access_expires_at = access_expiry(now, response)
    token.refresh_token_enc = encrypt(response.get("refresh_token"))
    token.scope = (response.get("scope") or "")[:500] or None  # granted (or, unstated, the requested) scope
    token.state, token.state_reason = TokenState.OK.value, None
    token.last_refreshed_at = None
    token.version = (token.version or 0) + 1
    db.session.add(token)  # only now: an autoflush must never see a half-filled row
    action = Action.RENEWED if renewed else Action.CONNECTED
    audit.record(company.id, action, f"Token expires {format_local(token.expires_at, locked.timezone)}", actor=user)
    db.session.commit()
    events.emit(events.CONNECTED, company_id=company.id, actor_id=user.id, generation=token.generation,
                renewed=renewed, expires_at=token.expires_at.isoformat())
    return token


def save_refreshed(token: SageToken, response: dict, now: datetime) -> bool:
    """Compare-and-swap the refreshed secrets; False when another process changed the token first."""
    values = {
        "access_token_enc": encrypt(response["access_token"]),
        "access_expires_at": access_expiry(now, response),
        "last_refreshed_at": now,
        "version": token.version + 1,
        "updated_at": now,
    }
    if response.get("refresh_token"):  # rotating providers send a new one; keep the old otherwise
        values["refresh_token_enc"] = encrypt(response["refresh_token"])
    if response.get("scope"):  # the provider stated the scope of the new token (it may only shrink)
        values["scope"] = response["scope"][:500]
    stated = _seconds(response.get("refresh_token_expires_in"))
    if stated is not None and now + timedelta(seconds=stated) < token.expires_at:
        values["expires_at"] = now + timedelta(seconds=stated)  # may shorten, never extends
        company = db.session.get(Company, token.company_id)
        values["remind_from"] = window_start(values["expires_at"], company.reminder_days, company.timezone)
    result = db.session.execute(
        update(SageToken)
        .where(SageToken.id == token.id, SageToken.version == token.version,
               SageToken.generation == token.generation)
        .values(**values)
    )
    db.session.commit()
    if result.rowcount == 1:
        events.emit(events.REFRESHED, company_id=token.company_id, generation=token.generation,
                    access_expires_at=values["access_expires_at"].isoformat() if values["access_expires_at"] else None)
    return result.rowcount == 1


def mark_needs_login(token: SageToken, reason: str) -> None:
    """Record that only a new Login Now can help (e.g. ``invalid_grant``), unless the token changed meanwhile."""
    result = db.session.execute(
        update(SageToken)
        .where(SageToken.id == token.id, SageToken.generation == token.generation)
        .values(state=TokenState.NEEDS_LOGIN.value, state_reason=reason[:500], version=SageToken.version + 1)
    )
    if result.rowcount:
        audit.record(token.company_id, Action.REFRESH_FAILED, reason)
    db.session.commit()


def disconnect(company: Company, user: User) -> bool:
    """Remove the company's token; False when there was none."""
    deleted = db.session.execute(delete(SageToken).where(SageToken.company_id == company.id)).rowcount
    if deleted:
        audit.record(company.id, Action.DISCONNECTED, "Stored token removed", actor=user)
    db.session.commit()
    if deleted:
        events.emit(events.DISCONNECTED, company_id=company.id, actor_id=user.id)
    return bool(deleted)


def sync_remind_from(company_id: int, commit: bool = True) -> None:
    """Recompute when the reminder window opens, after the company's reminder days or timezone changed.

    ``commit=False`` leaves it in the caller's transaction, so the setting and the window are saved together.
    """
    company = db.session.get(Company, company_id, populate_existing=True)
    token = current(company_id)
    if company is None or token is None:
        return
    opens = window_start(token.expires_at, company.reminder_days, company.timezone)
    db.session.execute(update(SageToken).where(SageToken.id == token.id, SageToken.expires_at == token.expires_at)
                       .values(remind_from=opens))
    if commit:
        db.session.commit()


def distrust_access(token: SageToken) -> bool:
    """The API refused this access token (401) although it has time left — e.g. the grant was revoked at Sage ID:
    mark it expired, so the next call refreshes through ``api.access_token``'s single-flight path. Changes nothing
    (False) when the token was saved again meanwhile (its version moved on)."""
    result = db.session.execute(
        update(SageToken).where(SageToken.id == token.id, SageToken.version == token.version)
        .values(access_expires_at=clock.now()))
    db.session.commit()
    return result.rowcount == 1
