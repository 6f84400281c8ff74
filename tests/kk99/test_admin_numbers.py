"""Money in the admin goes through the one formatter (kk99.numbers): list columns, read-only
and view-only detail pages and inlines show an amount at its asset's precision with thousands
separators — never the model's 18 decimals — and editable inputs drop the zero tail."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import models
from django.urls import reverse

from kk99.admin_numbers import MoneyAdmin, money_text
from wallets.models import Asset, Balance, JournalEvent
from wallets.services import ledger_credit

pytestmark = pytest.mark.django_db
EIGHTEEN = re.compile(r"\d\.\d{18}\b")


def test_every_admin_that_shows_a_decimal_field_formats_it_through_money_admin():
    missing = []
    for model, model_admin in admin.site._registry.items():
        candidates = [(model, model_admin)] + [(inline.model, inline) for inline in model_admin.inlines]
        for m, a in candidates:
            has_decimal = any(isinstance(f, models.DecimalField) for f in m._meta.get_fields())
            is_money = isinstance(a, MoneyAdmin) or (isinstance(a, type) and issubclass(a, MoneyAdmin))
            if has_decimal and not is_money:
                missing.append(f"{type(a).__name__ if not isinstance(a, type) else a.__name__} ({m.__name__})")
    assert not missing, missing


@pytest.fixture
def staff_client(client, django_user_model):
    staff = django_user_model.objects.create_superuser(email="staff@kk99.local", password="pw-not-used-123")
    client.force_login(staff)
    return client


@pytest.fixture
def credited(django_user_model):
    btc = Asset.objects.get_or_create(symbol="BTC", defaults={"name": "Bitcoin", "precision": 8})[0]
    user = django_user_model.objects.create_user(email="holder@example.com", password="pw-not-used-123")
    ledger_credit(user=user, asset=btc, amount=Decimal("1234.5"), idempotency_key="admin-numbers:1", kind="issuance", counter="issuance")
    return user, btc


def test_balance_list_shows_amounts_at_the_asset_precision(staff_client, credited):
    body = staff_client.get(reverse("admin:wallets_balance_changelist")).content.decode()
    assert "1,234.50000000" in body
    assert not EIGHTEEN.search(body), EIGHTEEN.search(body).group(0)


def test_view_only_detail_page_and_its_inline_show_formatted_amounts(staff_client, credited):
    user, btc = credited
    balance = Balance.objects.get(account__user=user, asset=btc)
    body = staff_client.get(reverse("admin:wallets_balance_change", args=[balance.pk])).content.decode()
    assert "1,234.50000000" in body and not EIGHTEEN.search(body)

    event = JournalEvent.objects.get(idempotency_key="admin-numbers:1")
    body = staff_client.get(reverse("admin:wallets_journalevent_change", args=[event.pk])).content.decode()
    assert "1,234.50000000" in body and "-1,234.50000000" in body  # both legs of the inline
    assert not EIGHTEEN.search(body)


def test_an_editable_decimal_input_shows_the_exact_value_without_the_zero_tail(staff_client):
    from wallets.chains.models import ChainAsset

    eth = Asset.objects.get_or_create(symbol="ETH", defaults={"name": "Ether", "precision": 8})[0]
    ca = ChainAsset.objects.create(chain="ETH", asset=eth, decimals=18, withdrawal_fee=Decimal("0.001"), min_withdrawal=Decimal("10"))
    body = staff_client.get(reverse("admin:chains_chainasset_change", args=[ca.pk])).content.decode()
    assert 'value="0.001"' in body and 'value="10"' in body
    assert not EIGHTEEN.search(body)
    body = staff_client.get(reverse("admin:chains_chainasset_changelist")).content.decode()
    assert "0.00100000" in body and "10.00000000" in body  # list columns at ETH's 8 decimals


def test_market_prices_use_the_tick_and_quantities_the_step(staff_client):
    from tests.api.factories import make_market
    from trading.models import Order

    market = make_market()
    order = Order(market=market, price=Decimal("60000.5"), quantity=Decimal("0.25"), cumulative_quote_qty=Decimal("15000.125"))
    assert money_text(order, "price", order.price) == "60,000.50"  # tick 0.01
    assert money_text(order, "quantity", order.quantity) == "0.2500"  # step 0.0001
    assert money_text(order, "cumulative_quote_qty", order.cumulative_quote_qty) == "15,000.12500000"  # USDT's 8 decimals
    assert money_text(market, "tick_size", market.tick_size) == "0.01"  # exact, no tail
    body = staff_client.get(reverse("admin:trading_market_changelist")).content.decode()
    assert not EIGHTEEN.search(body)
