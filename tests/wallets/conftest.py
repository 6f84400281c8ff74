"""Ledger fixtures: two assets with different precisions and a few users."""
from __future__ import annotations

from decimal import Decimal

import pytest

from wallets.models import Asset
from wallets.services import ledger_credit


@pytest.fixture
def btc(db):
    return Asset.objects.create(symbol="BTC", name="Bitcoin", precision=8)


@pytest.fixture
def usdt(db):
    return Asset.objects.create(symbol="USDT", name="Tether", precision=2)


@pytest.fixture
def make_user(db, django_user_model):
    counter = iter(range(1, 10_000))

    def make(email: str | None = None, **extra):
        return django_user_model.objects.create_user(email=email or f"user{next(counter)}@example.com", password="pw-not-used-123", **extra)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice@example.com")


@pytest.fixture
def bob(make_user):
    return make_user("bob@example.com")


@pytest.fixture
def fund():
    """Credit a user from ISSUANCE (the way the demo seeds money)."""
    counter = iter(range(1, 1_000_000))

    def fund(user, asset, amount):
        return ledger_credit(
            user=user, asset=asset, amount=Decimal(str(amount)), idempotency_key=f"fund:{next(counter)}:{user.pk}", kind="issuance", counter="issuance"
        )

    return fund
