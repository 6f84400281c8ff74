"""Signed /api/v3 endpoints: orders, queries, account, and Binance's error for each refusal."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.api.factories import BinanceClient, balance, make_trader, run_engine, signed_query
from trading.models import Order

pytestmark = pytest.mark.django_db

LIMIT_BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100"}


def _err(r):
    return r.status_code, r.json()


@pytest.fixture
def engine_answers_while_waiting(monkeypatch, settings):
    """RESULT/FULL wait for the engine; here the engine runs in-process during that wait."""
    from trading import services

    settings.KK99 = {**settings.KK99, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 1}

    def wait(*, order, timeout=None, until_final=True, placed=False):
        run_engine()
        return Order.objects.select_related("market").get(pk=order.pk)

    monkeypatch.setattr(services, "order_wait", wait)


# --- authentication -------------------------------------------------------------------------


def test_bad_signature_is_1022(client, alice):
    query = signed_query(alice[2], {"symbol": "BTCUSDT"})[:-4] + "0000"
    r = client.get(f"/api/v3/openOrders?{query}", HTTP_X_MBX_APIKEY=alice[1])
    assert _err(r) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})


def test_timestamp_outside_recv_window_is_1021(alice_api):
    r = alice_api.get("openOrders", {}, timestamp=int(time.time() * 1000) - 10_000, recv_window=5000)
    assert _err(r) == (400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."})
    r = alice_api.get("openOrders", {}, timestamp=int(time.time() * 1000) + 5000)
    assert r.json() == {"code": -1021, "msg": "Timestamp for this request was 1000ms ahead of the server's time."}


def test_recv_window_above_the_maximum_is_1131(alice_api):
    assert alice_api.get("openOrders", {}, recv_window=70_000).json()["code"] == -1131


def test_missing_timestamp_is_1102(client, alice):
    r = client.get("/api/v3/account?signature=abc", HTTP_X_MBX_APIKEY=alice[1])
    assert r.json() == {"code": -1102, "msg": "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."}


def test_missing_or_unknown_api_key_is_2014_or_2015(client, alice):
    query = signed_query(alice[2], {})
    assert _err(client.get(f"/api/v3/account?{query}")) == (401, {"code": -2014, "msg": "API-key format invalid."})
    r = client.get(f"/api/v3/account?{query}", HTTP_X_MBX_APIKEY="x" * 64)
    assert _err(r) == (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})


def test_read_only_key_cannot_trade_2015(client, market, django_user_model):
    user, key, secret = make_trader(django_user_model, permissions=(), funds={"USDT": "1000"})
    r = BinanceClient(client, key, secret).post("order", LIMIT_BUY)
    assert _err(r) == (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    assert not Order.objects.exists()


# --- placing: filters, balance, parameters --------------------------------------------------


@pytest.mark.parametrize(
    "change, filter_name",
    [
        ({"price": "100.005"}, "PRICE_FILTER"),
        ({"quantity": "0.00005"}, "LOT_SIZE"),
        ({"quantity": "0.12345"}, "LOT_SIZE"),
        ({"quantity": "5000"}, "LOT_SIZE"),
        ({"quantity": "0.001", "price": "100"}, "NOTIONAL"),
        ({"price": "1000"}, "PERCENT_PRICE"),
    ],
)
def test_each_filter_failure_is_1013_naming_the_filter_and_changes_nothing(alice, alice_api, change, filter_name):
    before = balance(alice[0], "USDT")
    r = alice_api.post("order", {**LIMIT_BUY, **change})
    assert _err(r) == (400, {"code": -1013, "msg": f"Filter failure: {filter_name}"})
    assert balance(alice[0], "USDT") == before and not Order.objects.exists()


def test_insufficient_balance_is_2010_with_balances_unchanged(client, market, django_user_model):
    user, key, secret = make_trader(django_user_model, funds={"USDT": "50", "BTC": "0.1"})
    api = BinanceClient(client, key, secret)
    before = balance(user, "USDT"), balance(user, "BTC")
    r = api.post("order", LIMIT_BUY)
    assert _err(r) == (400, {"code": -2010, "msg": "Account has insufficient balance for requested action."})
    r = api.post("order", {**LIMIT_BUY, "side": "SELL"})
    assert _err(r) == (400, {"code": -2010, "msg": "Account has insufficient balance for requested action."})
    assert (balance(user, "USDT"), balance(user, "BTC")) == before
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "params, code, msg",
    [
        ({"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100"}, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."),
        ({**LIMIT_BUY, "symbol": "NOPE"}, -1121, "Invalid symbol."),
        ({k: v for k, v in LIMIT_BUY.items() if k != "timeInForce"}, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."),
        ({k: v for k, v in LIMIT_BUY.items() if k != "price"}, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."),
        ({**LIMIT_BUY, "side": "UP"}, -1117, "Invalid side."),
        ({**LIMIT_BUY, "type": "ICEBERG"}, -1116, "Invalid orderType."),
        ({**LIMIT_BUY, "timeInForce": "GTX"}, -1115, "Invalid timeInForce."),
        ({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1", "price": "100"}, -1106, "Parameter 'price' sent when not required."),
        ({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"}, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"),
        ({**LIMIT_BUY, "quantity": "1e3"}, -1100, "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
        ({**LIMIT_BUY, "newClientOrderId": "bad id!"}, -1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'."),
        ({**LIMIT_BUY, "icebergQty": "0.1"}, -1014, "Unsupported order combination."),
    ],
)
def test_malformed_orders_get_binance_parameter_errors(alice_api, params, code, msg):
    r = alice_api.post("order", params)
    assert _err(r) == (400, {"code": code, "msg": msg})
    assert not Order.objects.exists()


def test_market_closed_is_2010(alice_api, market):
    market.status = "HALT"
    market.save()
    assert alice_api.post("order", LIMIT_BUY).json() == {"code": -2010, "msg": "Market is closed."}


# --- newOrderRespType -----------------------------------------------------------------------


def test_ack_response_has_only_the_identifiers(alice_api):
    body = alice_api.post("order", {**LIMIT_BUY, "newOrderRespType": "ACK", "newClientOrderId": "my-1"}).json()
    assert set(body) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    assert body["clientOrderId"] == "my-1" and body["orderListId"] == -1 and isinstance(body["transactTime"], int)


def test_result_response_shows_pending_orders_as_new(alice_api):
    body = alice_api.post("order", {**LIMIT_BUY, "newOrderRespType": "RESULT"}).json()
    assert body["status"] == "NEW" and Order.objects.get().status == Order.Status.PENDING_NEW
    assert Decimal(body["origQty"]) == 1 and Decimal(body["price"]) == 100 and Decimal(body["executedQty"]) == 0
    assert (body["type"], body["side"], body["timeInForce"], body["selfTradePreventionMode"]) == ("LIMIT", "BUY", "GTC", "NONE")
    assert "fills" not in body


def test_full_response_lists_the_fills_once_the_engine_matched(alice_api, bob_api, engine_answers_while_waiting):
    bob_api.post("order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.4", "price": "99", "newOrderRespType": "ACK"})
    body = alice_api.post("order", LIMIT_BUY).json()  # LIMIT defaults to FULL
    assert body["status"] == "PARTIALLY_FILLED" and Decimal(body["executedQty"]) == Decimal("0.4")
    (fill,) = body["fills"]
    assert Decimal(fill["price"]) == 99 and Decimal(fill["qty"]) == Decimal("0.4") and fill["tradeId"] == 1
    assert fill["commissionAsset"] == "BTC" and Decimal(fill["commission"]) == Decimal("0.0008")
    assert Decimal(body["cummulativeQuoteQty"]) == Decimal("39.6")


def test_same_client_order_id_returns_the_same_order(alice_api):
    a = alice_api.post("order", {**LIMIT_BUY, "newClientOrderId": "dup", "newOrderRespType": "ACK"}).json()
    b = alice_api.post("order", {**LIMIT_BUY, "newClientOrderId": "dup", "newOrderRespType": "ACK"}).json()
    assert a["orderId"] == b["orderId"] and Order.objects.count() == 1


def test_order_test_validates_but_writes_nothing(alice, alice_api):
    before = balance(alice[0], "USDT")
    assert alice_api.post("order/test", LIMIT_BUY).json() == {}
    assert alice_api.post("order/test", {**LIMIT_BUY, "quantity": "9999"}).json()["code"] == -1013
    rates = alice_api.post("order/test", {**LIMIT_BUY, "computeCommissionRates": "true"}).json()
    assert rates["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00200000"}
    assert not Order.objects.exists() and balance(alice[0], "USDT") == before


# --- query, cancel, lists -------------------------------------------------------------------


def test_query_unknown_order_is_2013_and_cancel_unknown_is_2011(alice_api):
    assert _err(alice_api.get("order", {"symbol": "BTCUSDT", "orderId": 999})) == (400, {"code": -2013, "msg": "Order does not exist."})
    assert _err(alice_api.delete("order", {"symbol": "BTCUSDT", "orderId": 999})) == (400, {"code": -2011, "msg": "Unknown order sent."})
    r = alice_api.get("order", {"symbol": "BTCUSDT"})
    assert r.json() == {"code": -1102, "msg": "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"}


def test_a_user_can_never_see_or_cancel_another_users_order(alice_api, bob_api):
    oid = alice_api.post("order", {**LIMIT_BUY, "newOrderRespType": "ACK", "newClientOrderId": "alice-1"}).json()["orderId"]
    assert bob_api.get("order", {"symbol": "BTCUSDT", "orderId": oid}).json()["code"] == -2013
    assert bob_api.get("order", {"symbol": "BTCUSDT", "origClientOrderId": "alice-1"}).json()["code"] == -2013
    assert bob_api.delete("order", {"symbol": "BTCUSDT", "orderId": oid}).json()["code"] == -2011
    assert bob_api.get("openOrders", {"symbol": "BTCUSDT"}).json() == []
    assert bob_api.get("allOrders", {"symbol": "BTCUSDT"}).json() == []
    assert bob_api.delete("openOrders", {"symbol": "BTCUSDT"}).json() == []
    assert not Order.objects.get(pk=oid).cancel_requested


def test_get_cancel_and_lists_follow_the_engine(alice, alice_api):
    oid = alice_api.post("order", {**LIMIT_BUY, "newOrderRespType": "ACK", "newClientOrderId": "c1"}).json()["orderId"]
    run_engine()
    got = alice_api.get("order", {"symbol": "BTCUSDT", "origClientOrderId": "c1"}).json()
    assert got["orderId"] == oid and got["status"] == "NEW" and got["isWorking"] is True and Decimal(got["stopPrice"]) == 0
    assert [o["orderId"] for o in alice_api.get("openOrders", {}).json()] == [oid]
    cancel = alice_api.delete("order", {"symbol": "BTCUSDT", "orderId": oid}).json()
    assert cancel["orderId"] == oid and cancel["origClientOrderId"] == "c1"
    run_engine()
    assert alice_api.get("order", {"symbol": "BTCUSDT", "orderId": oid}).json()["status"] == "CANCELED"
    assert balance(alice[0], "USDT") == (Decimal("100000"), Decimal("0"))
    assert alice_api.delete("order", {"symbol": "BTCUSDT", "orderId": oid}).json()["code"] == -2011
    assert [o["status"] for o in alice_api.get("allOrders", {"symbol": "BTCUSDT"}).json()] == ["CANCELED"]
    assert alice_api.get("openOrders", {"symbol": "BTCUSDT"}).json() == []


def test_cancel_all_open_orders(alice_api):
    for i in range(3):
        alice_api.post("order", {**LIMIT_BUY, "price": str(90 + i), "newOrderRespType": "ACK"})
    run_engine()
    cancelled = alice_api.delete("openOrders", {"symbol": "BTCUSDT"}).json()
    assert len(cancelled) == 3
    run_engine()
    assert set(Order.objects.values_list("status", flat=True)) == {"CANCELED"}


def test_my_trades_and_account(alice, bob, alice_api, bob_api):
    bob_api.post("order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100", "newOrderRespType": "ACK"})
    run_engine()
    alice_api.post("order", {**LIMIT_BUY, "newOrderRespType": "ACK"})
    run_engine()
    (mine,) = alice_api.get("myTrades", {"symbol": "BTCUSDT"}).json()
    assert mine["isBuyer"] is True and mine["isMaker"] is False and Decimal(mine["qty"]) == 1 and mine["commissionAsset"] == "BTC"
    (theirs,) = bob_api.get("myTrades", {"symbol": "BTCUSDT"}).json()
    assert theirs["isBuyer"] is False and theirs["isMaker"] is True and theirs["commissionAsset"] == "USDT"
    acct = alice_api.get("account", {"omitZeroBalances": "true"}).json()
    balances = {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in acct["balances"]}
    assert balances["BTC"] == (Decimal("100") + Decimal("1") - Decimal("0.002"), 0)
    assert balances["USDT"] == (Decimal("99900"), 0)
    assert acct["canTrade"] is True and acct["accountType"] == "SPOT" and acct["permissions"] == ["SPOT"]


def test_signed_post_accepts_parameters_in_the_query_string(client, alice):
    query = signed_query(alice[2], {**LIMIT_BUY, "newOrderRespType": "ACK"})
    r = client.post(f"/api/v3/order?{query}", data="", content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=alice[1])
    assert r.status_code == 200, r.json() and "orderId" in r.json()


def test_noop_is_signed_and_cheap(alice_api, client):
    assert alice_api.post("kk99/noop").json() == {}
    assert client.post("/api/v3/kk99/noop").json()["code"] == -2014
