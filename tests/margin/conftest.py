"""Margin fixtures: BTC/USDT market, margin terms, a funded lending pool, funded traders."""
from __future__ import annotations

from datetime import datetime, UTC
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Permission

from margin.models import BorrowCap, InterestRate, MarginAsset
from margin.services import margin_account_for, pool_funding_approve, pool_funding_request
from tests.trading.conftest import fund, market_create
from wallets.models import Asset


@pytest.fixture(autouse=True)
def _fee_tiers_per_batch(settings):
    settings.KK99 = {**settings.KK99, "FEE_TIER_CACHE_SECONDS": 0}


@pytest.fixture
def btc(db):
    return Asset.objects.get_or_create(symbol="BTC", defaults={"name": "Bitcoin", "precision": 8})[0]


@pytest.fixture
def usdt(db):
    return Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether", "precision": 8})[0]


@pytest.fixture
def market(btc, usdt):
    # reference price 100 USDT per BTC until the first trade
    return market_create("BTCUSDT", btc, usdt)


@pytest.fixture
def make_user(db, django_user_model):
    counter = iter(range(1, 100_000))

    def make(email: str | None = None, **extra):
        extra.setdefault("kyc_tier", 2)
        return django_user_model.objects.create_user(email=email or f"m{next(counter)}@example.com", password="pw-not-used-123", **extra)

    return make


def staff_pair(make_user):
    """Two staff members (the default staff allow-list) who may request and approve pool funding."""
    from django.contrib.auth import get_user_model

    perms = Permission.objects.filter(codename__in=["fund_pool", "fund_pool_approve"])
    pair = []
    for email in ("staff@kk99.local", "finance@kk99.local"):
        s = get_user_model().objects.filter(email=email).first() or make_user(email=email, is_staff=True)
        s.user_permissions.add(*perms)
        pair.append(get_user_model().objects.get(pk=s.pk))  # fresh permission cache
    return pair


def pool_fund(make_user, asset, amount) -> None:
    requester, approver = staff_pair(make_user)
    funding = pool_funding_request(staff=requester, asset=asset, amount=D(str(amount)), reason="test pool")
    pool_funding_approve(funding_id=funding.pk, staff=approver)


HOUR0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def terms(btc, usdt, market, make_user):
    """BTC (ratio 0.9) and USDT (ratio 1) borrowable; caps 10 BTC / 100,000 USDT; daily rates
    0.024 % (BTC) and 0.048 % (USDT); pool funded with 50 BTC and 500,000 USDT."""
    MarginAsset.objects.create(asset=btc, borrowable=True, collateral_ratio=D("0.9"))
    MarginAsset.objects.create(asset=usdt, borrowable=True, collateral_ratio=D("1"))
    BorrowCap.objects.create(asset=btc, tier=1, max_borrow=D("10"))
    BorrowCap.objects.create(asset=usdt, tier=1, max_borrow=D("100000"))
    InterestRate.objects.create(asset=btc, tier=1, daily_rate=D("0.00024"), effective_from=HOUR0)
    InterestRate.objects.create(asset=usdt, tier=1, daily_rate=D("0.00048"), effective_from=HOUR0)
    pool_fund(make_user, btc, "50")
    pool_fund(make_user, usdt, "500000")


@pytest.fixture
def trader(make_user, btc, usdt):
    def make(**extra):
        user = make_user(**extra)
        fund(user, btc, "100")
        fund(user, usdt, "1000000")
        return user

    return make


@pytest.fixture
def cross(trader, terms):
    """A user with 100 BTC + 1,000,000 USDT spot and an (empty) cross margin account."""
    user = trader()
    return user, margin_account_for(user)
