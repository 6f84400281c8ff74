"""Margin fixtures: margin terms, a funded lending pool and a cross-margin user, on top of the
shared market and funded traders of tests/fixtures.py."""
from __future__ import annotations

from datetime import datetime, UTC
from decimal import Decimal as D

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from margin.models import BorrowCap, InterestRate, MarginAsset
from margin.services import margin_account_for, pool_funding_approve, pool_funding_request


@pytest.fixture(autouse=True)
def _fee_tiers_per_batch(settings):
    settings.KK99 = {**settings.KK99, "FEE_TIER_CACHE_SECONDS": 0}


def staff_pair(make_user):
    """Two staff members (the default staff allow-list) who may request and approve pool funding."""
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
def cross(trader, terms):
    """A user with 100 BTC + 1,000,000 USDT spot and an (empty) cross margin account."""
    user = trader()
    return user, margin_account_for(user)
