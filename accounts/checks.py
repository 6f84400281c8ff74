"""System checks for the accounts app's security configuration."""
from __future__ import annotations

from django.core.checks import Error, Tags, Warning, register

from kk99.conf import kk99_setting


@register(Tags.security)
def check_staff_emails(app_configs, **kwargs):
    emails = kk99_setting("STAFF_EMAILS")
    if not isinstance(emails, (list, tuple)) or not all(isinstance(e, str) and "@" in e for e in emails):
        return [Error("KK99['STAFF_EMAILS'] must be a list of email addresses.", hint="Set KK99_STAFF_EMAILS=a@x,b@y", id="accounts.E001")]
    return []


@register(Tags.security)
def check_encryption_key(app_configs, **kwargs):
    from accounts.crypto import _box_for

    key = kk99_setting("API_KEY_ENCRYPTION_KEY")
    if key:
        try:
            _box_for(key)
        except (ValueError, TypeError):
            return [Error(
                "KK99_API_KEY_ENCRYPTION_KEY is not a valid Fernet key (or comma-separated list of keys).",
                hint="Generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
                id="accounts.E002",
            )]
    return []


@register(Tags.security, deploy=True)
def check_encryption_key_set(app_configs, **kwargs):
    if not kk99_setting("API_KEY_ENCRYPTION_KEY"):
        return [Warning("API-key and TOTP secrets are encrypted with a key derived from SECRET_KEY.", hint="Set KK99_API_KEY_ENCRYPTION_KEY.", id="accounts.W001")]
    return []


@register(Tags.database)
def check_staff_allow_list(app_configs, databases=None, **kwargs):
    """Existing staff accounts whose email is not (or no longer) on the allow-list.
    Runs with ``check --database default`` and before ``migrate``."""
    if not databases:
        return []
    from django.db import DatabaseError
    from django.db.models import Q

    from accounts.models import User
    from accounts.staff import staff_emails

    try:
        offenders = [u.email for u in User.objects.filter(Q(is_staff=True) | Q(is_superuser=True)).only("email") if u.email.lower() not in staff_emails()]
    except DatabaseError:  # not migrated yet
        return []
    if offenders:
        return [Error(
            f"Staff accounts not on KK99_STAFF_EMAILS: {', '.join(sorted(offenders)[:20])}",
            hint="Add them to KK99_STAFF_EMAILS or remove their staff flag (they cannot use the back office either way).",
            id="accounts.E003",
        )]
    return []
