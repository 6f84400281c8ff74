"""Secrets of one checkout for development, the demo and the tests.

The development settings used to carry a published ``SECRET_KEY`` constant: any deployment
that forgot ``DJANGO_SETTINGS_MODULE`` signed its sessions, JWTs and email-verification tokens
with a key everybody knows. Instead, each checkout generates its own random key the first time
it is needed and keeps it under ``var/`` (git-ignored), so it survives restarts (sessions and
encrypted API-key secrets stay valid) and differs from every other checkout. Production never
reads this file: ``kk99.settings.production`` requires ``SECRET_KEY`` from the environment."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_FILE_NAME = "secret_key"


def checkout_secret(var_dir: Path, name: str = KEY_FILE_NAME, *, nbytes: int = 50) -> str:
    """The value kept in ``var_dir/name``, created (mode 0600) on first use. Safe when several
    processes of the checkout start at once: exactly one creates the file, all read it."""
    path = Path(var_dir) / name
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = secrets.token_urlsafe(nbytes)
    tmp = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")  # unique per thread too
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(candidate + "\n")
    try:
        os.link(tmp, path)  # atomic and fails if another process won the race
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
