"""Fixtures for the accounts tests: users in each state, API clients, TOTP with a pinned
clock, API keys and staff in each role."""
from __future__ import annotations

import io

import pyotp
import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import User

PASSWORD = "Correct-Horse-Battery-9"
NOW = 1_900_000_005.0  # pinned clock for TOTP: a fixed point inside a 30 s step


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def make_user(db):
    def make(email: str = "alice@example.com", *, verified: bool = True, tier: int | None = None, **extra) -> User:
        user = User.objects.create_user(email=email, password=PASSWORD, **extra)
        if verified:
            user.email_verified_at = timezone.now()
            user.kyc_tier = 1 if tier is None else tier
            user.save()
        elif tier is not None:
            user.kyc_tier = tier
            user.save()
        return user

    return make


@pytest.fixture
def user(make_user) -> User:
    return make_user()


@pytest.fixture
def other_user(make_user) -> User:
    return make_user("bob@example.com")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def jwt_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def clock(monkeypatch):
    """Pin the TOTP clock; ``clock.step(n)`` moves it n time steps."""

    class Clock:
        now = NOW

        def code(self, secret: str, offset: int = 0) -> str:
            return pyotp.TOTP(secret).at(self.now + offset * 30)

        def step(self, n: int = 1) -> None:
            self.now += 30 * n

    instance = Clock()
    monkeypatch.setattr(services, "_clock", lambda: instance.now)
    return instance


@pytest.fixture
def enable_totp(clock):
    """Enable 2FA for a user; returns (secret, recovery codes). The confirming code used
    the step before ``clock.now``, so the current and next steps are still usable."""

    def enable(user: User) -> tuple[str, list[str]]:
        setup = services.totp_setup_begin(user=user)
        codes = services.totp_setup_confirm(user=user, code=clock.code(setup.secret, -1))
        return setup.secret, codes

    return enable


@pytest.fixture
def staff(db, settings):
    """``staff(role)`` → a staff user in that role group (its email put on the allow-list)."""

    def make(role: str, email: str | None = None) -> User:
        email = email or f"{role}@kk99.local"
        settings.KK99 = {**settings.KK99, "STAFF_EMAILS": [*settings.KK99["STAFF_EMAILS"], email]}
        member = User.objects.create_user(email=email, password=PASSWORD, is_staff=True)
        member.groups.add(Group.objects.get(name=role))
        return User.objects.get(pk=member.pk)  # fresh: no cached permissions

    return make


def png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_upload(name: str = "id.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"\xff\xd8\xff\xe0" + b"\x00" * 200, content_type="image/jpeg")


def png_upload(name: str = "selfie.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(), content_type="image/png")


def pdf_upload(name: str = "bill.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"%PDF-1.4\n%fake but well-formed header\n", content_type="application/pdf")

