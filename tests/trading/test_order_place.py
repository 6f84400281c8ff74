"""order_place: validation, exact holds, idempotent client ids; every refusal leaves state unchanged."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from kk99.errors import KK99Error
from tests.fixtures import bal, place
from trading.errors import TradingError, TradingErrorCode
from trading.models import Market, Order
from wallets.models import JournalEvent

pytestmark = pytest.mark.django_db


def test_buy_limit_holds_quantity_times_price_in_quote(alice, market, usdt):
    o = place(alice, market, "BUY", quantity="2", price="100.50")
    assert o.status == Order.Status.PENDING_NEW
    assert (o.held_asset, o.held_amount, o.held_remaining) == (usdt, D("201.000"), D("201.000"))
    assert bal(alice, usdt) == (D("1000000") - D("201"), D("201"))


def test_sell_holds_quantity_in_base(alice, market, btc):
    o = place(alice, market, "SELL", quantity="1.5", price="100")
    assert (o.held_asset, o.held_amount) == (btc, D("1.5"))
    assert bal(alice, btc) == (D("98.5"), D("1.5"))


def test_market_buy_by_quantity_holds_band_ceiling(alice, market, usdt):
    # reference 100, band 50 % → protection price 150
    o = place(alice, market, "BUY", type="MARKET", quantity="2")
    assert o.protection_price == D("150")
    assert o.held_amount == D("300")
    assert bal(alice, usdt)[1] == D("300")


def test_market_buy_by_quote_holds_the_quote_amount(alice, market, usdt):
    o = place(alice, market, "BUY", type="MARKET", quote_order_qty="250.5")
    assert o.held_amount == D("250.5") and o.quantity is None


def test_stop_market_buy_holds_band_over_stop_price(alice, market):
    o = place(alice, market, "BUY", type="STOP_LOSS", quantity="1", stop_price="120")
    assert o.protection_price == D("180") and o.held_amount == D("180")


def test_client_order_id_is_idempotent(alice, market, usdt):
    first = place(alice, market, "BUY", quantity="1", price="100", client_order_id="abc")
    again = place(alice, market, "BUY", quantity="5", price="90", client_order_id="abc")
    assert again.pk == first.pk
    assert Order.objects.filter(user=alice).count() == 1
    assert bal(alice, usdt)[1] == D("100")


def test_same_client_order_id_for_two_users_is_fine(alice, bob, market):
    a = place(alice, market, "BUY", quantity="1", price="100", client_order_id="same")
    b = place(bob, market, "BUY", quantity="1", price="100", client_order_id="same")
    assert a.pk != b.pk


def _snapshot(user, market):
    from wallets.models import Balance

    return (
        sorted(Balance.objects.filter(account__user=user).values_list("asset_id", "available", "locked")),
        Order.objects.count(),
        JournalEvent.objects.count(),
    )


REJECTIONS = [
    # kwargs, expected code, expected filter
    (dict(side="BUY", quantity="1", price="100.001"), TradingErrorCode.FILTER_FAILURE, "PRICE_FILTER"),
    (dict(side="BUY", quantity="1.0005", price="100"), TradingErrorCode.FILTER_FAILURE, "LOT_SIZE"),
    (dict(side="BUY", quantity="0.0001", price="100"), TradingErrorCode.FILTER_FAILURE, "LOT_SIZE"),
    (dict(side="BUY", quantity="1001", price="100"), TradingErrorCode.FILTER_FAILURE, "LOT_SIZE"),
    (dict(side="BUY", quantity="0.001", price="100"), TradingErrorCode.FILTER_FAILURE, "NOTIONAL"),
    (dict(side="BUY", quantity="1", price="151"), TradingErrorCode.FILTER_FAILURE, "PERCENT_PRICE"),
    (dict(side="SELL", quantity="1", price="49"), TradingErrorCode.FILTER_FAILURE, "PERCENT_PRICE"),
    (dict(side="BUY", type="STOP_LOSS_LIMIT", quantity="1", price="100", stop_price="99.999"), TradingErrorCode.FILTER_FAILURE, "PRICE_FILTER"),
    (dict(side="BUY", quantity="1"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="BUY", type="MARKET", quantity="1", price="100"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="BUY", type="MARKET"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="SELL", type="MARKET", quote_order_qty="10"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="BUY", type="STOP_LOSS", quantity="1"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="BUY", type="LIMIT", quantity="1", price="100", stop_price="90"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="SIDEWAYS", quantity="1", price="100"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="BUY", type="ICEBERG", quantity="1", price="100"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="BUY", quantity="-1", price="100"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="BUY", quantity="1", price="100", time_in_force="GTD"), TradingErrorCode.INVALID_PARAMETER, None),
    (dict(side="BUY", quantity="100", price="100000"), TradingErrorCode.FILTER_FAILURE, "PERCENT_PRICE"),
    (dict(side="SELL", quantity="101", price="100"), TradingErrorCode.INSUFFICIENT_BALANCE, None),
]


@pytest.mark.parametrize("kwargs,code,filter_name", REJECTIONS)
def test_every_rejection_leaves_state_unchanged(alice, market, kwargs, code, filter_name):
    kwargs = dict(kwargs)
    side = kwargs.pop("side")
    kwargs.setdefault("type", "LIMIT")
    before = _snapshot(alice, market)
    with pytest.raises(TradingError) as info:
        place(alice, market, side, **kwargs)
    assert info.value.code == code
    if filter_name:
        assert info.value.details["filter"] == filter_name
    assert _snapshot(alice, market) == before


def test_unknown_symbol(alice, market):
    with pytest.raises(TradingError) as info:
        place(alice, "NOPEUSDT", "BUY", quantity="1", price="100")
    assert info.value.code == TradingErrorCode.INVALID_SYMBOL


@pytest.mark.parametrize("status", [Market.Status.HALT, Market.Status.BREAK, Market.Status.CANCEL_ONLY])
def test_non_trading_market_rejects_new_orders(alice, market, status, usdt):
    Market.objects.filter(pk=market.pk).update(status=status)
    market.refresh_from_db()
    before = _snapshot(alice, market)
    with pytest.raises(TradingError) as info:
        place(alice, market, "BUY", quantity="1", price="100")
    assert info.value.code == TradingErrorCode.MARKET_CLOSED
    assert _snapshot(alice, market) == before


def test_frozen_user_cannot_trade_and_gets_account_frozen(trader, market):
    user = trader(is_frozen=True)
    before = _snapshot(user, market)
    with pytest.raises(KK99Error) as info:
        place(user, market, "BUY", quantity="1", price="100")
    assert info.value.code == "account_frozen" and info.value.status == 403
    assert _snapshot(user, market) == before


def test_kyc_tier_zero_cannot_trade_and_gets_trading_not_allowed(trader, market):
    user = trader(kyc_tier=0)
    with pytest.raises(KK99Error) as info:
        place(user, market, "BUY", quantity="1", price="100")
    assert info.value.code == "trading_not_allowed" and info.value.status == 403
