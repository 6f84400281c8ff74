"""Test support: what force_login means for the back office (used by tests/conftest.py)."""
from __future__ import annotations

import pyotp
from django.utils import timezone

from accounts.admin_site import second_factor_passed
from accounts.crypto import encrypt_text
from accounts.models import TotpDevice


def staff_second_factor_prepare(user) -> None:
    """Give ``user`` a confirmed 2FA device (unless it has one) and mark the coming login as
    having passed it — what ``force_login`` means for the back office in tests."""
    if not user.totp_enabled:
        TotpDevice.objects.update_or_create(user=user, defaults={"secret_encrypted": encrypt_text(pyotp.random_base32()), "confirmed_at": timezone.now()})
        user._state.fields_cache.pop("totp_device", None)
    second_factor_passed(user)
