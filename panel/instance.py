"""The instance folder: private (0700) with private files, and the development secrets generated into it."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

# Development secrets kept in the instance folder: config key -> (file name, generator).
INSTANCE_SECRETS = {
    "SECRET_KEY": ("secret_key", lambda: secrets.token_urlsafe(48)),
    "PANEL_ENCRYPTION_KEYS": ("encryption_keys", lambda: Fernet.generate_key().decode()),
}


def instance_secret(instance: Path, filename: str) -> str:
    """A development secret kept in the instance folder, or "" when it has not been generated yet."""
    path = instance / filename
    return path.read_text().strip() if path.exists() else ""


def _generate_secret(instance: Path, filename: str, make) -> str:
    """Write a new development secret (mode 0600); another process that wrote it first wins."""
    path = instance / filename
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(make() + "\n")
    return path.read_text().strip()


def ensure_instance(cfg: dict, instance_path: str) -> None:
    """Create the instance folder and (development only) its missing secrets; create_app skips it while
    `flask --help` lists commands, so asking for help writes nothing."""
    instance = Path(instance_path)
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)  # secrets, the database, Redis' files
    if cfg.get("PRODUCTION"):
        return  # production never generates secrets: production_problems() refused to start without them
    for key, (filename, make) in INSTANCE_SECRETS.items():
        if not cfg.get(key):
            value = _generate_secret(instance, filename, make)
            cfg[key] = [k.strip() for k in value.split(",") if k.strip()] if key == "PANEL_ENCRYPTION_KEYS" else value


def private_sqlite_file(uri: str) -> None:
    """Create the SQLite database file 0600 before SQLite does (it would follow the umask, usually 0644); SQLite
    gives its journal the database file's mode. An empty file is a valid empty database."""
    if not uri.startswith("sqlite:///") or "?" in uri:
        return
    path = uri[len("sqlite:///"):]
    if not path or path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileNotFoundError:
        pass  # its folder does not exist: SQLite cannot create it either, and says so when first used (/readyz)
