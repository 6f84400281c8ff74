"""Signed, expiring tokens for email verification (django.core.signing).

The token carries the user id *and* the email it was sent to, so a link stops working if the
address changes. Password reset uses Django's ``default_token_generator`` instead, which is
additionally invalidated by a password change or a new login."""
from __future__ import annotations

from django.core import signing

from kk99.conf import kk99_setting

_SALT = "kk99.accounts.email-verification"


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


def email_verification_token_make(*, user) -> str:
    return signing.dumps({"u": user.pk, "e": user.email}, salt=_SALT, compress=True)


def email_verification_token_read(token: str) -> tuple[int, str]:
    """Return ``(user_id, email)``; raise :class:`TokenExpired` or :class:`TokenInvalid`."""
    try:
        payload = signing.loads(token, salt=_SALT, max_age=kk99_setting("EMAIL_VERIFICATION_MAX_AGE_SECONDS"))
    except signing.SignatureExpired as exc:
        raise TokenExpired from exc
    except signing.BadSignature as exc:
        raise TokenInvalid from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int) or not isinstance(payload.get("e"), str):
        raise TokenInvalid
    return payload["u"], payload["e"]
