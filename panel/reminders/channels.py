"""A company's notification channels: added (checked, encrypted), listed (masked, never the URL), removed, tested.

Reminders and connection alerts go to every channel as well as by email (``channel_send.py``, ``alerts.py``).
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from .. import audit, clock
from ..audit import Action
from ..crypto import DecryptionError, decrypt, encrypt
from ..extensions import db
from ..models_alerts import NotifyChannel
from . import notifier
from .notifier import BadChannel, Sent

MAX_CHANNELS = 10
MAX_LABEL = 100


@dataclass(frozen=True)
class Form:
    """The add-channel form as shown: what was typed and the message beside each field."""

    url: str = ""
    label: str = ""
    url_error: str | None = None
    label_error: str | None = None
    added: str | None = None  # the label of the channel just added


def allow_private() -> bool:
    """Whether channel URLs may point at private and local addresses (PANEL_CHANNEL_ALLOW_PRIVATE)."""
    return bool(current_app.config.get("PANEL_CHANNEL_ALLOW_PRIVATE"))


def deadline() -> float:
    """Seconds one message to a channel may take (PANEL_CHANNEL_TIMEOUT)."""
    return float(current_app.config.get("PANEL_CHANNEL_TIMEOUT") or 10)


def listed(company_id: int) -> list[NotifyChannel]:
    """The company's channels, oldest first."""
    return list(db.session.scalars(select(NotifyChannel).where(NotifyChannel.company_id == company_id)
                                   .order_by(NotifyChannel.id)))


def ids_by_company(company_ids: list[int]) -> dict[int, list[int]]:
    """Channel ids per company."""
    found: dict[int, list[int]] = {}
    rows = db.session.execute(select(NotifyChannel.company_id, NotifyChannel.id)
                              .where(NotifyChannel.company_id.in_(company_ids)).order_by(NotifyChannel.id))
    for company_id, channel_id in rows:
        found.setdefault(company_id, []).append(channel_id)
    return found


def _digest(url: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"panel.channel-url\0" + url.encode(), hashlib.sha256).hexdigest()


def _clean_label(raw: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in raw).split())


def add(company, user, raw_url: str | None, raw_label: str | None) -> Form:
    """Add a channel from the form; bad input gets a message and changes nothing."""
    url, label = (raw_url or "").strip(), _clean_label(raw_label or "")
    shown = Form(url=url[:notifier.MAX_URL], label=label[:MAX_LABEL])
    if len(label) > MAX_LABEL:
        return Form(shown.url, shown.label, label_error=f"A name can be at most {MAX_LABEL} characters.")
    try:
        parsed = notifier.parse(url, allow_private())
    except BadChannel as exc:
        return Form(shown.url, shown.label, url_error=str(exc))
    count = db.session.scalar(select(func.count()).where(NotifyChannel.company_id == company.id))
    if count >= MAX_CHANNELS:
        return Form(shown.url, shown.label, url_error=f"A company can have at most {MAX_CHANNELS} channels. "
                                                      "Remove one first.")
    channel = NotifyChannel(company_id=company.id, service=parsed.service, service_name=parsed.service_name,
                            label=label or parsed.service_name, url_enc=encrypt(url), url_masked=parsed.masked,
                            url_digest=_digest(url), created_at=clock.now(), created_by_name=user.name[:200])
    db.session.add(channel)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return Form(shown.url, shown.label, url_error="This channel has already been added.")
    audit.record(company.id, Action.CHANNEL_ADDED, f"{channel.label} ({parsed.service_name}: {parsed.masked})",
                 actor=user)
    db.session.commit()
    return Form(added=channel.label)


def find(company_id: int, channel_id: int) -> NotifyChannel | None:
    """The company's channel ``channel_id`` (None for another company's, or a missing one)."""
    return db.session.scalar(select(NotifyChannel).where(NotifyChannel.id == channel_id,
                                                         NotifyChannel.company_id == company_id))


def remove(company_id: int, channel_id: int, user) -> str | None:
    """Remove a channel (and its ledger rows); returns its label, or None when it was not there."""
    channel = find(company_id, channel_id)
    if channel is None:
        return None
    label = channel.label
    db.session.execute(delete(NotifyChannel).where(NotifyChannel.id == channel_id))
    audit.record(company_id, Action.CHANNEL_REMOVED, f"{label} ({channel.service_name}: {channel.url_masked})",
                 actor=user)
    db.session.commit()
    return label


def url_of(channel: NotifyChannel) -> str | None:
    """The channel's URL, decrypted (None when no configured key opens it)."""
    try:
        return decrypt(channel.url_enc)
    except DecryptionError:
        return None


def deliver(channel: NotifyChannel, title: str, body: str) -> tuple[Sent, str]:
    """Send one message to ``channel`` now."""
    url = url_of(channel)
    if url is None:
        return Sent.REFUSED, "the stored URL cannot be decrypted with the configured keys; add the channel again"
    return notifier.send(url, title, body, deadline=deadline(), allow_private=allow_private())


def send_test(company, channel: NotifyChannel, user) -> tuple[bool, str]:
    """"Send test": a short message to the channel at once; (worked, what to show)."""
    title = f"Test message from the Sage panel for {company.name}"
    body = (f"{user.name} sent this test from Settings › Sage. Sage token reminders and connection alerts for "
            f"{company.name} will arrive here.")
    how, reason = deliver(channel, title, body)
    ok = how is Sent.SENT
    text = (f"Sent a test message to {channel.label}." if ok else
            f"The test message to {channel.label} may have arrived, but {channel.service_name} did not answer in "
            f"time." if how is Sent.UNCERTAIN else f"Couldn't send to {channel.label}: {reason}")
    audit.record(company.id, Action.CHANNEL_TESTED, f"{channel.label}: {'sent' if ok else how.value}", actor=user,
                 commit=True)
    return ok, text
