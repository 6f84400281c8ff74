"""The pre-trade controls of risk.services.order_check: each refuses with its own code, through
every API, and a refusal writes nothing (no order, no journal event, no hold)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from kk99.errors import KK99Error
from risk import selectors
from risk.errors import RiskErrorCode
from risk.models import RiskLimit
from tests.api.factories import balance, make_market, write_trade
from trading.binance.errors import CATALOG, from_kk99
from trading.models import Order
from trading.services import order_place
from wallets.models import JournalEvent

pytestmark = pytest.mark.django_db

V3 = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100", "newOrderRespType": "ACK"}


def _written(user) -> tuple:
    return Order.objects.count(), JournalEvent.objects.count(), balance(user, "USDT"), balance(user, "BTC")


def _place(user, **kw):
    fields = {"market": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100", **kw}
    return order_place(user=user, **fields)


def _refused(user, code: RiskErrorCode, **kw) -> KK99Error:
    before = _written(user)
    with pytest.raises(KK99Error) as info:
        _place(user, **kw)
    assert info.value.code == code, info.value
    assert _written(user) == before
    return info.value


def _v1(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


# --- the limits in force ---------------------------------------------------------------------


def test_the_most_specific_limit_wins_field_by_field(alice, market, settings):
    user = alice[0]
    settings.KK99 = {**settings.KK99, "RISK_DEFAULTS": {**settings.KK99["RISK_DEFAULTS"], "max_order_qty": "50", "max_open_orders": 7}}
    RiskLimit.objects.create(market=market, max_order_qty=Decimal("10"), price_collar_pct=Decimal("5"))
    RiskLimit.objects.create(user=user, max_order_qty=Decimal("20"), orders_per_10s=3)
    RiskLimit.objects.create(user=user, market=market, max_order_qty=Decimal("2"))
    limits = selectors.limits_for(user=user, market=market)
    assert limits.max_order_qty == Decimal("2")  # account+market
    assert limits.orders_per_10s == 3  # account
    assert limits.price_collar_pct == Decimal("5")  # market
    assert limits.max_open_orders == 7  # settings
    other = make_market("ETHUSDT")
    assert selectors.limits_for(user=user, market=other).max_order_qty == Decimal("20")


# --- size, notional, collar ----------------------------------------------------------------


def test_an_order_above_the_maximum_quantity_is_refused_and_writes_nothing(alice, market):
    RiskLimit.objects.create(user=alice[0], market=market, max_order_qty=Decimal("2"))
    _refused(alice[0], RiskErrorCode.MAX_ORDER_QTY, quantity="2.0001")
    assert _place(alice[0], quantity="2").status == Order.Status.PENDING_NEW


def test_an_order_above_the_maximum_notional_is_refused(alice, market):
    RiskLimit.objects.create(user=alice[0], max_order_notional=Decimal("500"))
    _refused(alice[0], RiskErrorCode.MAX_ORDER_NOTIONAL, quantity="5.01", price="100")
    _refused(alice[0], RiskErrorCode.MAX_ORDER_NOTIONAL, type="MARKET", price=None, quantity=None, quote_order_qty="501")
    assert _place(alice[0], quantity="5", price="100")


def test_a_limit_price_outside_the_market_collar_is_refused_inside_is_accepted(alice, market):
    # The market's reference is 100 and PERCENT_PRICE allows ±50 %; the collar is ±5 %.
    RiskLimit.objects.create(market=market, price_collar_pct=Decimal("5"))
    error = _refused(alice[0], RiskErrorCode.PRICE_COLLAR, price="105.01")
    assert error.details == {"low": "95", "high": "105"}
    _refused(alice[0], RiskErrorCode.PRICE_COLLAR, price="94.99")
    assert _place(alice[0], price="105") and _place(alice[0], price="95")


# --- open orders ------------------------------------------------------------------------------


def test_max_num_orders_per_market_answers_binance_filter_failure(alice, alice_api, market):
    RiskLimit.objects.create(market=market, max_open_orders_per_market=2)
    for _ in range(2):
        assert alice_api.post("order", V3).status_code == 200
    before = _written(alice[0])
    response = alice_api.post("order", V3)
    assert response.status_code == 400
    assert response.json() == {"code": -1013, "msg": "Filter failure: MAX_NUM_ORDERS"}
    assert _written(alice[0]) == before


def test_max_open_orders_per_account_counts_every_market(alice, alice_api, market):
    make_market("ETHUSDT")
    RiskLimit.objects.create(user=alice[0], max_open_orders=2)
    _place(alice[0])
    _place(alice[0], market="ETHUSDT")
    response = alice_api.post("order", V3)
    assert response.status_code == 400 and response.json() == {"code": -2010, "msg": "Account has too many open orders."}
    body = _v1(alice[0]).post("/api/v1/orders/", {k: v for k, v in V3.items() if k not in ("timeInForce", "newOrderRespType")}, format="json")
    assert body.status_code == 400 and body.json()["error"]["code"] == "risk_max_open_orders_account"


def test_a_final_order_no_longer_counts_as_open(alice, market):
    RiskLimit.objects.create(user=alice[0], market=market, max_open_orders_per_market=1)
    order = _place(alice[0])
    _refused(alice[0], RiskErrorCode.MAX_OPEN_ORDERS_MARKET)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELED)
    assert _place(alice[0])


# --- order rate ----------------------------------------------------------------------------


def test_the_order_rate_limit_answers_429_minus_1015_with_order_count_headers(alice, alice_api, market):
    RiskLimit.objects.create(user=alice[0], orders_per_10s=3)
    for n in range(1, 4):
        ok = alice_api.post("order", V3)
        assert ok.status_code == 200 and ok["X-MBX-ORDER-COUNT-10S"] == str(n) and ok["X-MBX-ORDER-COUNT-1D"] == str(n)
    before = _written(alice[0])
    refused = alice_api.post("order", V3)
    assert refused.status_code == 429
    assert refused.json() == {"code": -1015, "msg": "Too many new orders; current limit is 3 orders per 10 SECOND."}
    assert refused["X-MBX-ORDER-COUNT-10S"] == "4"
    assert _written(alice[0]) == before


def test_the_order_rate_limit_is_429_on_rest_v1_too(alice, market):
    RiskLimit.objects.create(user=alice[0], orders_per_day=1)
    _place(alice[0])
    response = _v1(alice[0]).post("/api/v1/orders/", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100"}, format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "order_rate_limited"


def test_an_order_refused_by_another_control_uses_no_rate_budget(alice, market):
    RiskLimit.objects.create(user=alice[0], market=market, orders_per_10s=1, max_order_qty=Decimal("1"))
    _refused(alice[0], RiskErrorCode.MAX_ORDER_QTY, quantity="2")
    assert selectors.order_counts(user=alice[0])["10S"] == 0
    assert _place(alice[0])


# --- daily traded notional -------------------------------------------------------------------


def test_the_daily_notional_limit_counts_todays_fills_and_the_new_order(alice, market):
    user = alice[0]
    RiskLimit.objects.create(user=user, max_daily_notional=Decimal("1000"))
    now = timezone.now()
    write_trade(market, price="100", qty="8", at=now, user=user)  # 800 USDT today
    write_trade(market, price="100", qty="50", at=now - dt.timedelta(days=2), user=user)  # not today
    assert selectors.traded_notional_today_usdt(user=user) == Decimal("800")
    error = _refused(user, RiskErrorCode.DAILY_NOTIONAL, quantity="2.01")
    assert error.status == 403 and error.details["used"] == "800"
    assert _place(user, quantity="2")


# --- duplicate guard --------------------------------------------------------------------------


def test_the_duplicate_guard_is_off_by_default(alice, market):
    _place(alice[0])
    assert _place(alice[0])


def test_the_duplicate_guard_refuses_the_same_order_within_its_window(alice, alice_api, market):
    RiskLimit.objects.create(user=alice[0], duplicate_window_ms=60_000)
    _place(alice[0])
    _refused(alice[0], RiskErrorCode.DUPLICATE_ORDER)
    assert _place(alice[0], price="99")  # a different price is another order
    assert _place(alice[0], side="SELL")  # and so is the other side
    response = alice_api.post("order", {**V3, "price": "99"})
    assert response.status_code == 400 and response.json() == {"code": -2010, "msg": "Duplicate order sent."}


# --- the one catalog ----------------------------------------------------------------------


@pytest.mark.parametrize("code", list(RiskErrorCode))
def test_every_risk_code_has_its_own_binance_mapping(code):
    assert code.value in CATALOG
    rendered = from_kk99(KK99Error(code, "x", limit=3, interval="1 DAY"))
    assert rendered.code < 0 and rendered.code != -1000


def test_exchange_info_publishes_max_num_orders_and_the_orders_rate_limits(client, market):
    RiskLimit.objects.create(market=market, max_open_orders_per_market=25)
    body = client.get("/api/v3/exchangeInfo").json()
    (symbol,) = body["symbols"]
    assert {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 25} in symbol["filters"]
    limits = {(r["rateLimitType"], r["interval"], r["intervalNum"]): r["limit"] for r in body["rateLimits"]}
    defaults = selectors.default_limits()
    assert limits[("ORDERS", "SECOND", 10)] == defaults.orders_per_10s
    assert limits[("ORDERS", "DAY", 1)] == defaults.orders_per_day
    assert body["exchangeFilters"] == [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": defaults.max_open_orders}]


def test_the_one_round_trip_snapshot_resolves_like_limits_for(alice, market):
    user = alice[0]
    other = make_market("ETHUSDT")
    RiskLimit.objects.create(market=market, max_order_qty=Decimal("10"), price_collar_pct=Decimal("5"))
    RiskLimit.objects.create(market=other, max_order_qty=Decimal("1"))
    RiskLimit.objects.create(user=user, max_order_qty=Decimal("20"), orders_per_10s=3, max_daily_notional=Decimal("1000000.5"))
    RiskLimit.objects.create(user=user, market=market, max_order_qty=Decimal("2"))
    _place(user)
    _place(user, market="ETHUSDT")
    snapshot = selectors.pretrade_snapshot(user=user, market=market)
    assert snapshot.limits == selectors.limits_for(user=user, market=market)
    assert (snapshot.open_here, snapshot.open_total, snapshot.switches) == (1, 2, [])


def test_the_html_order_form_shows_the_risk_refusal_and_writes_nothing(client, alice, market):
    RiskLimit.objects.create(user=alice[0], market=market, max_order_qty=Decimal("2"))
    client.force_login(alice[0])
    before = _written(alice[0])
    response = client.post("/trade/BTCUSDT/orders/", {"side": "BUY", "type": "LIMIT", "quantity": "3", "price": "100"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "above the maximum of 2" in response.content.decode()
    assert _written(alice[0]) == before


def test_the_open_order_counts_stop_at_the_largest_limit_in_scope(alice, market, settings):
    # Bounded work for an account with many open orders: each count stops at the largest
    # open-order limit any row in scope (or the default) sets — enough to decide "count ≥ limit".
    user = alice[0]
    make_market("ETHUSDT")
    settings.KK99 = {**settings.KK99, "RISK_DEFAULTS": {**settings.KK99["RISK_DEFAULTS"], "max_open_orders": None, "max_open_orders_per_market": None}}
    for _ in range(3):
        _place(user)
        _place(user, market="ETHUSDT")
    settings.KK99 = {**settings.KK99, "RISK_DEFAULTS": {**settings.KK99["RISK_DEFAULTS"], "max_open_orders": 4, "max_open_orders_per_market": 2}}
    RiskLimit.objects.create(user=user, max_open_orders_per_market=5)  # looser, account-wide
    RiskLimit.objects.create(user=user, market=market, max_open_orders_per_market=3)  # in force on BTCUSDT
    snapshot = selectors.pretrade_snapshot(user=user, market=market)
    assert (snapshot.limits.max_open_orders_per_market, snapshot.limits.max_open_orders) == (3, 4)
    assert (snapshot.open_here, snapshot.open_total) == (3, 4)  # here: 3 open (cap 5); total: 6 open, cap 4
    assert _refused(user, RiskErrorCode.MAX_OPEN_ORDERS_MARKET).details["limit"] == 3
    assert _refused(user, RiskErrorCode.MAX_OPEN_ORDERS_ACCOUNT, market="ETHUSDT").details["limit"] == 4


def test_with_no_open_order_limit_in_force_nothing_is_counted_or_refused(alice, market, settings):
    settings.KK99 = {**settings.KK99, "RISK_DEFAULTS": {**settings.KK99["RISK_DEFAULTS"], "max_open_orders": None, "max_open_orders_per_market": None}}
    user = alice[0]
    for _ in range(3):
        _place(user)
    snapshot = selectors.pretrade_snapshot(user=user, market=market)
    assert (snapshot.limits.max_open_orders, snapshot.limits.max_open_orders_per_market) == (None, None)
    assert (snapshot.open_here, snapshot.open_total) == (0, 0)
    _place(user)
