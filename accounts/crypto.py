"""Encryption at rest for the secrets the exchange must be able to read back (API-key
secrets, which HMAC verification needs in clear; TOTP seeds).

:func:`secret_box` is the single place that knows where the key comes from. Today that is
``KK99["API_KEY_ENCRYPTION_KEY"]`` (one Fernet key, or several separated by commas: the first
encrypts, all decrypt — so keys can be rotated); a Vault-backed box can replace it later
without touching any caller.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from kk99.conf import kk99_setting

logger = logging.getLogger(__name__)

__all__ = ["InvalidToken", "decrypt_text", "derived_development_key", "encrypt_text", "secret_box"]


def derived_development_key(secret_key: str) -> str:
    """A Fernet key derived from SECRET_KEY. Development only: anyone who learns SECRET_KEY
    can read every stored secret, and rotating SECRET_KEY makes them unreadable."""
    digest = hashlib.sha256(b"kk99.accounts.secret-box:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@functools.lru_cache(maxsize=8)
def _box_for(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()])


def secret_box() -> MultiFernet:
    """The cipher for secrets at rest. Raises ``ValueError`` for a malformed configured key."""
    configured = kk99_setting("API_KEY_ENCRYPTION_KEY")
    if not configured:
        _warn_derived_key()
        configured = derived_development_key(settings.SECRET_KEY)
    return _box_for(configured)


@functools.lru_cache(maxsize=1)
def _warn_derived_key() -> None:
    logger.warning(
        "KK99_API_KEY_ENCRYPTION_KEY is not set: API-key and TOTP secrets are encrypted with a key "
        "DERIVED FROM SECRET_KEY. Acceptable for development only; set a Fernet key in production."
    )


def encrypt_text(plain: str) -> str:
    return secret_box().encrypt(plain.encode()).decode()


def decrypt_text(token: str) -> str:
    """Raises :class:`cryptography.fernet.InvalidToken` when the key does not match."""
    return secret_box().decrypt(token.encode()).decode()
