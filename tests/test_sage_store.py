"""The token store: generations, expiry rules, encryption at rest, compare-and-swap, disconnect."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from panel.crypto import DecryptionError, decrypt
from panel.extensions import db
from panel.models import AuditEvent, Company, SageToken, User
from panel.sage import store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
SECRET_ACCESS = "access-SECRET-7f3a9c"
SECRET_REFRESH = "refresh-SECRET-91be42"


def response(**extra):
    return {"access_token": SECRET_ACCESS, "refresh_token": SECRET_REFRESH, "expires_in": 480,
            "token_type": "Bearer", "scope": "openid offline_access", **extra}


@pytest.fixture
def ctx(app):
    with app.app_context():
        company = Company.query.filter_by(name="Demo Ltd").one()
        admin = User.query.filter_by(email="admin@example.com").one()
        yield company, admin


@pytest.mark.parametrize("extra, expected", [
    ({}, NOW + timedelta(days=90)),
    ({"refresh_token_expires_in": 3600}, NOW + timedelta(hours=1)),
    ({"refresh_token_expires_in": "7776000"}, NOW + timedelta(days=90)),
    ({"refresh_token_expires_in": 0}, NOW + timedelta(days=90)),        # nonsense is ignored
    ({"refresh_token_expires_in": "soon"}, NOW + timedelta(days=90)),
])
def test_token_expiry(extra, expected):
    assert store.token_expiry(NOW, response(**extra), 90) == expected


def test_save_new_counts_generations_and_audits(ctx):
    company, admin = ctx
    first = store.save_new(company, admin, response(), NOW)
    assert (first.generation, first.connected_by_name, first.consented_at) == (1, "Alice Admin", NOW)
    assert first.expires_at == NOW + timedelta(days=90) and first.access_expires_at == NOW + timedelta(seconds=480)
    second = store.save_new(company, admin, response(), NOW + timedelta(days=80))
    assert second.id == first.id and second.generation == 2 and second.expires_at == NOW + timedelta(days=170)
    actions = [e.action for e in AuditEvent.query.order_by(AuditEvent.id)]
    assert actions == ["connected", "renewed"]
    # Disconnect, then connect again: generations never repeat.
    assert store.disconnect(company, admin) is True
    assert store.current(company.id) is None
    third = store.save_new(company, admin, response(), NOW + timedelta(days=81))
    assert third.generation == 3
    assert store.disconnect(company, admin) is True and store.disconnect(company, admin) is False


def test_secrets_are_encrypted_at_rest(app, ctx):
    company, admin = ctx
    token = store.save_new(company, admin, response(), NOW)
    assert decrypt(token.access_token_enc) == SECRET_ACCESS and decrypt(token.refresh_token_enc) == SECRET_REFRESH
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    db.session.close()
    if not uri.startswith("sqlite:///"):  # PostgreSQL: every column of every row, as the server returns them
        raw = db.session.execute(db.text("select t::text from sage_token t")).scalars().all()
        assert raw and all(SECRET_ACCESS not in r and SECRET_REFRESH not in r for r in raw)
        return
    db_file = uri.removeprefix("sqlite:///")
    raw = open(db_file, "rb").read()
    assert SECRET_ACCESS.encode() not in raw and SECRET_REFRESH.encode() not in raw
    rows = sqlite3.connect(db_file).execute("select access_token_enc, refresh_token_enc from sage_token").fetchall()
    assert rows and all(SECRET_ACCESS not in v and SECRET_REFRESH not in v for row in rows for v in row)


def test_wrong_key_cannot_decrypt(app, ctx):
    company, admin = ctx
    token = store.save_new(company, admin, response(), NOW)
    from cryptography.fernet import Fernet

    app.config["PANEL_ENCRYPTION_KEYS"] = [Fernet.generate_key().decode()]
    with pytest.raises(DecryptionError):
        decrypt(token.access_token_enc)


def test_key_rotation_keeps_old_tokens_readable(app, ctx):
    from cryptography.fernet import Fernet

    from panel.crypto import rotate

    company, admin = ctx
    token = store.save_new(company, admin, response(), NOW)
    old = app.config["PANEL_ENCRYPTION_KEYS"]
    app.config["PANEL_ENCRYPTION_KEYS"] = [Fernet.generate_key().decode()] + old
    assert decrypt(token.access_token_enc) == SECRET_ACCESS  # old key still decrypts
    rotated = rotate(token.access_token_enc)
    app.config["PANEL_ENCRYPTION_KEYS"] = app.config["PANEL_ENCRYPTION_KEYS"][:1]
    assert decrypt(rotated) == SECRET_ACCESS  # readable with the new key alone


def test_refresh_save_is_compare_and_swap_and_never_extends(ctx):
    company, admin = ctx
    token = store.save_new(company, admin, response(), NOW)
    stale = SageToken(id=token.id, version=token.version, generation=token.generation, expires_at=token.expires_at,
                      company_id=company.id)
    later = NOW + timedelta(hours=1)
    assert store.save_refreshed(token, {"access_token": "a2", "refresh_token": "r2", "expires_in": 480,
                                        "refresh_token_expires_in": 200 * 86400}, later) is True
    fresh = store.current(company.id)
    assert decrypt(fresh.refresh_token_enc) == "r2" and fresh.expires_at == NOW + timedelta(days=90)
    # A second writer that read the old version loses, and the rotated refresh token survives.
    assert store.save_refreshed(stale, {"access_token": "a3", "refresh_token": "r3", "expires_in": 480}, later) is False
    assert decrypt(store.current(company.id).refresh_token_enc) == "r2"


def test_mark_needs_login_ignores_a_newer_generation(ctx):
    company, admin = ctx
    old = store.save_new(company, admin, response(), NOW)
    old_copy = SageToken(id=old.id, generation=old.generation, company_id=company.id)
    store.save_new(company, admin, response(), NOW + timedelta(minutes=1))
    store.mark_needs_login(old_copy, "invalid_grant")
    assert store.current(company.id).state == "ok"


def test_reencrypt_tokens_command_moves_tokens_to_the_new_key(app, ctx, runner):
    from cryptography.fernet import Fernet

    company, admin = ctx
    store.save_new(company, admin, response(), NOW)
    old = app.config["PANEL_ENCRYPTION_KEYS"]
    app.config["PANEL_ENCRYPTION_KEYS"] = [Fernet.generate_key().decode()] + old
    out = runner.invoke(args=["reencrypt-tokens"])
    assert out.exit_code == 0 and "Re-encrypted 1 token under" in out.output
    app.config["PANEL_ENCRYPTION_KEYS"] = app.config["PANEL_ENCRYPTION_KEYS"][:1]  # old key removed
    token = store.current(company.id)
    assert decrypt(token.access_token_enc) == SECRET_ACCESS and decrypt(token.refresh_token_enc) == SECRET_REFRESH
