"""One Config, read from the environment, with instance-folder defaults and production safety checks."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from cryptography.fernet import Fernet

from .envvars import ConfigError, sweep_interval_minutes
from .instance import instance_secret

ENVIRONMENTS = ("development", "production")
# A secret must not be guessable: zxcvbn (Dropbox's strength estimator: repeats, sequences, keyboard walks,
# dictionary words) must put it at 10**30 guesses or more (about 100 bits). Random keys score far above that
# (secrets.token_urlsafe(48): ~64); "a" * 32, "0123456789abcdef" * 2 or "my-secret-key-xxxx…" score under 20.
MIN_GUESSES_LOG10 = 30
APP_WORDS = ["panel", "sage", "secret", "key", "crm", "flask", "password", "changeme", "production"]
# Every request body is capped (413 before parsing): our forms are a few short fields.
MAX_BODY_BYTES = 64 * 1024


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def _seconds_list(env: Mapping[str, str], name: str, default: str) -> list[float]:
    raw = env.get(name, "").strip() or default
    try:
        values = [float(part) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError(f"{name} must be comma-separated seconds, got {raw!r}") from exc
    if any(not 0 <= v <= 600 for v in values) or len(values) > 5:
        raise ConfigError(f"{name} must be at most 5 pauses of 0 to 600 seconds, got {raw!r}")
    return values


def _readable_file(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not os.path.isfile(raw) or not os.access(raw, os.R_OK):
        raise ConfigError(f"{name} must be a readable file, got {raw!r}")
    return raw


PROMPTS = {"none", "login", "consent", "select_account"}  # OpenID Connect Core §3.1.2.1


def _prompt(env: Mapping[str, str]) -> str:
    raw = " ".join(env.get("SAGE_PROMPT", "").split())
    unknown = [p for p in raw.split() if p not in PROMPTS]
    if unknown:
        raise ConfigError(f"SAGE_PROMPT must be empty or among {', '.join(sorted(PROMPTS))}, got {raw!r}")
    return raw


def guessable(secret: str) -> bool:
    """True when ``secret`` has too little entropy to be a key (see MIN_GUESSES_LOG10)."""
    # Imported here: zxcvbn's word lists take 12 MiB in every process that loads them, and only production's
    # start-up check needs them (`make run`, the worker and cron in development never do).
    from zxcvbn import zxcvbn

    sample = secret[:256]  # zxcvbn's cost grows with length; 256 characters say enough
    return zxcvbn(sample, user_inputs=APP_WORDS, max_length=256)["guesses_log10"] < MIN_GUESSES_LOG10


def load_config(instance_path: str, env: Mapping[str, str] | None = None) -> dict:
    """Build the Flask configuration dict from the environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    instance = Path(instance_path)
    panel_env = env.get("PANEL_ENV", "development").strip().lower() or "development"
    if panel_env not in ENVIRONMENTS:
        # A typo such as "prod" must not quietly run development (demo Sage ID, generated secrets).
        raise ConfigError(f"PANEL_ENV must be one of {', '.join(ENVIRONMENTS)}, got {panel_env!r}")
    production = panel_env == "production"
    client_id = env.get("SAGE_CLIENT_ID", "").strip()

    secret_key = env.get("SECRET_KEY", "").strip()
    enc_keys = env.get("PANEL_ENCRYPTION_KEYS", "").strip()
    if not production:  # generated on first use by ensure_instance() when still missing
        secret_key = secret_key or instance_secret(instance, "secret_key")
        enc_keys = enc_keys or instance_secret(instance, "encryption_keys")

    database_url = env.get("DATABASE_URL", "").strip() or f"sqlite:///{instance / 'panel.sqlite3'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]

    port = _int(env, "PORT", 5000)
    cfg = {
        "PANEL_ENV": panel_env,
        "PRODUCTION": production,
        "SECRET_KEY": secret_key,
        "PANEL_ENCRYPTION_KEYS": [k.strip() for k in enc_keys.split(",") if k.strip()],
        "SQLALCHEMY_DATABASE_URI": database_url,
        "PANEL_ALLOW_SQLITE": _bool(env.get("PANEL_ALLOW_SQLITE")),
        "REDIS_URL": env.get("REDIS_URL", "").strip(),
        "PORT": port,
        "PANEL_BASE_URL": env.get("PANEL_BASE_URL", "").strip().rstrip("/") or f"http://127.0.0.1:{port}",
        "PANEL_TRUSTED_PROXIES": _int(env, "PANEL_TRUSTED_PROXIES", 0),
        # Compress HTML, CSS and JavaScript here (brotli/gzip); 0 when a front server compresses instead.
        "PANEL_COMPRESS": _bool(env.get("PANEL_COMPRESS"), True),
        "PANEL_IDLE_TIMEOUT_MINUTES": _int(env, "PANEL_IDLE_TIMEOUT_MINUTES", 30),
        "PANEL_ABSOLUTE_TIMEOUT_HOURS": _int(env, "PANEL_ABSOLUTE_TIMEOUT_HOURS", 12),
        "PANEL_LOGIN_MAX_FAILURES": _int(env, "PANEL_LOGIN_MAX_FAILURES", 5),
        "PANEL_LOGIN_MAX_FAILURES_PER_ADDRESS": _int(env, "PANEL_LOGIN_MAX_FAILURES_PER_ADDRESS", 20),
        "PANEL_LOGIN_LOCK_MINUTES": _int(env, "PANEL_LOGIN_LOCK_MINUTES", 15),
        "PANEL_DEMO_PASSWORD": env.get("PANEL_DEMO_PASSWORD", ""),
        # Sessions: HttpOnly + SameSite=Lax always (Lax, not Strict, so the OAuth callback keeps the session).
        # __Host- (production, which is https): the browser only accepts it Secure, Path=/ and without Domain.
        "SESSION_COOKIE_NAME": "__Host-panel_session" if production else "panel_session",
        "SESSION_COOKIE_PATH": "/",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": production,
        # CSRF tokens live as long as the session, not one hour, so long-open tabs keep working.
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_SSL_STRICT": production,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        # Request bodies: 413 from the Content-Length before anything is read, and while reading a chunked body.
        "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
        "MAX_FORM_MEMORY_SIZE": MAX_BODY_BYTES,
        "MAX_FORM_PARTS": 50,
        # How long a request waits (and retries) for a database lock before answering "busy, nothing saved".
        "PANEL_DB_BUSY_SECONDS": _int(env, "PANEL_DB_BUSY_SECONDS", 5),
        # Mail
        "MAIL_SERVER": env.get("MAIL_SERVER", "").strip(),
        "MAIL_PORT": _int(env, "MAIL_PORT", 587),
        "MAIL_USE_TLS": _bool(env.get("MAIL_USE_TLS"), True),
        "MAIL_USE_SSL": _bool(env.get("MAIL_USE_SSL")),
        "MAIL_USERNAME": env.get("MAIL_USERNAME", "").strip() or None,
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD", "") or None,
        "MAIL_DEFAULT_SENDER": env.get("MAIL_DEFAULT_SENDER", "").strip() or "Sage panel <no-reply@example.com>",
        "MAIL_TIMEOUT": _int(env, "MAIL_TIMEOUT", 30),
        "MAIL_CA_FILE": _readable_file(env, "MAIL_CA_FILE"),
        # Sage ID
        "SAGE_CLIENT_ID": client_id,
        "SAGE_CLIENT_SECRET": env.get("SAGE_CLIENT_SECRET", ""),
        "SAGE_AUTHORIZE_URL": env.get("SAGE_AUTHORIZE_URL", "").strip() or "https://id.sage.com/authorize",
        "SAGE_TOKEN_URL": env.get("SAGE_TOKEN_URL", "").strip() or "https://id.sage.com/oauth/token",
        "SAGE_AUDIENCE": env.get("SAGE_AUDIENCE", "s200ukipd/sage200").strip(),
        "SAGE_SCOPES": env.get("SAGE_SCOPES", "").strip() or "openid profile email offline_access",
        "SAGE_API_BASE": (env.get("SAGE_API_BASE", "").strip()
                          or "https://api.columbus.sage.com/uk/sage200/accounts/v1").rstrip("/"),
        "SAGE_USE_PKCE": _bool(env.get("SAGE_USE_PKCE"), True),
        "SAGE_PROMPT": _prompt(env),
        "SAGE_TOKEN_LIFETIME_DAYS": _int(env, "SAGE_TOKEN_LIFETIME_DAYS", 90),
        "SAGE_HTTP_TIMEOUT": _int(env, "SAGE_HTTP_TIMEOUT", 10),
        "SAGE_DEMO": not client_id,
        "SAGE_DEMO_TOKEN_LIFETIME_MINUTES": _int(env, "SAGE_DEMO_TOKEN_LIFETIME_MINUTES", 0),
        # Reminders
        "PANEL_SWEEP_INTERVAL_MINUTES": sweep_interval_minutes(env),
        # A reminder left 'sending' (or 'claimed' untouched) this long belongs to a dead worker: hand it out again.
        "PANEL_REMINDER_LEASE_SECONDS": _int(env, "PANEL_REMINDER_LEASE_SECONDS", 600),
        # Connection checks and channels (issue 15)
        "PANEL_CHECK_RETRY_SECONDS": _seconds_list(env, "PANEL_CHECK_RETRY_SECONDS", "5,30"),
        "PANEL_CHANNEL_TIMEOUT": _int(env, "PANEL_CHANNEL_TIMEOUT", 10),
        "PANEL_CHANNEL_ALLOW_PRIVATE": _bool(env.get("PANEL_CHANNEL_ALLOW_PRIVATE")),
        "PANEL_METRICS_TOKEN": env.get("PANEL_METRICS_TOKEN", "").strip(),
    }
    return cfg


def production_problems(cfg: Mapping) -> list[str]:
    """List every missing or unsafe setting for production; empty when the configuration is safe."""
    problems: list[str] = []
    if not cfg.get("PRODUCTION"):
        return problems
    key = cfg.get("SECRET_KEY") or ""
    if not key:
        problems.append("SECRET_KEY is not set")
    elif len(key) < 32:
        problems.append("SECRET_KEY is shorter than 32 characters")
    elif guessable(key):
        problems.append("SECRET_KEY is guessable (repeats, sequences or words): generate one with "
                        "python -c 'import secrets; print(secrets.token_urlsafe(48))'")
    keys = cfg.get("PANEL_ENCRYPTION_KEYS") or []
    if not keys:
        problems.append("PANEL_ENCRYPTION_KEYS is not set (generate one with: "
                        "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')")
    else:
        for k in keys:
            try:
                Fernet(k)
            except (ValueError, TypeError):
                problems.append("PANEL_ENCRYPTION_KEYS holds a key that is not a valid Fernet key")
                break
            if guessable(k):
                problems.append("PANEL_ENCRYPTION_KEYS holds a guessable key (not random): generate one with "
                                "Fernet.generate_key()")
                break
    if cfg.get("SAGE_DEMO") or not cfg.get("SAGE_CLIENT_ID"):
        problems.append("demo mode is on: set SAGE_CLIENT_ID and SAGE_CLIENT_SECRET for the real Sage ID")
    elif not cfg.get("SAGE_CLIENT_SECRET"):
        problems.append("SAGE_CLIENT_SECRET is not set")
    uri = cfg.get("SQLALCHEMY_DATABASE_URI", "")
    if uri.startswith("sqlite") and not cfg.get("PANEL_ALLOW_SQLITE"):
        problems.append("DATABASE_URL is SQLite: use PostgreSQL, or set PANEL_ALLOW_SQLITE=1 to say so explicitly")
    if not cfg.get("REDIS_URL"):
        problems.append("REDIS_URL is not set (the embedded Redis is for development only)")
    if not cfg.get("MAIL_SERVER"):
        problems.append("MAIL_SERVER is not set (the demo outbox is for development only)")
    metrics = cfg.get("PANEL_METRICS_TOKEN") or ""
    if metrics and (len(metrics) < 32 or guessable(metrics)):
        problems.append("PANEL_METRICS_TOKEN is short or guessable: generate one with "
                        "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    base = cfg.get("PANEL_BASE_URL", "")
    if not base.startswith("https://"):
        problems.append("PANEL_BASE_URL must be the public https:// address of the panel")
    return problems
