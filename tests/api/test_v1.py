"""REST v1 (/api/v1): public market data, orders and fills with JWT or API-key auth."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests.api.factories import balance, make_market, run_engine, write_trade
from trading.models import Order

pytestmark = pytest.mark.django_db


def _jwt(user) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return c


@pytest.fixture
def alice_v1(alice):
    return _jwt(alice[0])


@pytest.fixture
def bob_v1(bob):
    return _jwt(bob[0])


def test_markets_list_detail_and_filters(market):
    make_market("ETHBTC", quote=market.base, base=market.quote)  # an odd pair, enough for filtering
    c = APIClient()
    assert [m["symbol"] for m in c.get("/api/v1/markets/").json()] == ["BTCUSDT", "ETHBTC"]
    assert [m["symbol"] for m in c.get("/api/v1/markets/?quote=usdt").json()] == ["BTCUSDT"]
    detail = c.get("/api/v1/markets/BTCUSDT/").json()
    assert detail["display_symbol"] == "BTC/USDT" and detail["tick_size"] == "0.01" and detail["min_notional"] == "1"
    r = c.get("/api/v1/markets/NOPE/")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_symbol"


def test_public_market_data_endpoints(market):
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
    write_trade(market, price="100", qty="2", at=start + dt.timedelta(seconds=1))
    write_trade(market, price="104", qty="1", at=start + dt.timedelta(minutes=2, seconds=1))
    c = APIClient()
    depth = c.get("/api/v1/markets/BTCUSDT/depth/?limit=10").json()
    assert depth == {"symbol": "BTCUSDT", "last_update_id": 0, "bids": [], "asks": []}
    trades = c.get("/api/v1/markets/BTCUSDT/trades/").json()
    assert [(t["trade_id"], t["price"], t["qty"]) for t in trades] == [(1, "100", "2"), (2, "104", "1")]
    candles = c.get("/api/v1/markets/BTCUSDT/candles/", {"interval": "1m", "limit": 3, "start": start.isoformat()}).json()
    assert [(k["open"], k["close"], k["volume"]) for k in candles] == [("100", "100", "2"), ("100", "100", "0"), ("104", "104", "1")]
    assert c.get("/api/v1/markets/BTCUSDT/candles/?interval=7m").status_code == 400
    ticker = c.get("/api/v1/markets/BTCUSDT/ticker/").json()
    assert (ticker["last"], ticker["volume"], ticker["count"]) == ("104", "3", 2) and ticker["vwap"].startswith("101.333")
    assert [t["symbol"] for t in c.get("/api/v1/tickers/").json()] == ["BTCUSDT"]
    avg = c.get("/api/v1/markets/BTCUSDT/averages/?minutes=60").json()
    assert avg["last_price"] == "104" and Decimal(avg["vwap"]).quantize(Decimal("0.01")) == Decimal("101.33")


def test_orders_need_authentication(market):
    r = APIClient().post("/api/v1/orders/", {"symbol": "BTCUSDT"}, format="json")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


def test_place_get_list_cancel_and_history(alice, alice_v1):
    r = alice_v1.post("/api/v1/orders/", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100", "client_order_id": "v1-a"}, format="json")
    assert r.status_code == 201, r.json()
    order = r.json()
    assert order["status"] == "NEW" and order["price"] == "100" and order["quantity"] == "1"
    assert balance(alice[0], "USDT") == (Decimal("99900"), Decimal("100"))
    assert alice_v1.get(f"/api/v1/orders/{order['id']}/").json()["client_order_id"] == "v1-a"
    run_engine()
    assert [o["id"] for o in alice_v1.get("/api/v1/orders/?symbol=BTCUSDT").json()] == [order["id"]]
    assert alice_v1.delete(f"/api/v1/orders/{order['id']}/").status_code == 202
    run_engine()
    assert alice_v1.get(f"/api/v1/orders/{order['id']}/").json()["status"] == "CANCELED"
    assert balance(alice[0], "USDT") == (Decimal("100000"), Decimal("0"))
    history = alice_v1.get("/api/v1/orders/history/").json()
    assert [o["id"] for o in history["results"]] == [order["id"]]


def test_floats_are_refused_and_filters_reported(alice_v1):
    r = alice_v1.post("/api/v1/orders/", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": 0.1, "price": "100"}, format="json")
    assert r.status_code == 400 and "quantity" in r.json()["error"]["details"]
    r = alice_v1.post("/api/v1/orders/", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100.001"}, format="json")
    assert r.json()["error"]["code"] == "filter_failure" and r.json()["error"]["details"]["filter"] == "PRICE_FILTER"
    assert not Order.objects.exists()


def test_cancel_all_and_fills(alice_v1, bob_v1):
    for price in ("98", "99"):
        bob_v1.post("/api/v1/orders/", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "quantity": "1", "price": price}, format="json")
    run_engine()
    alice_v1.post("/api/v1/orders/", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "98"}, format="json")
    run_engine()
    (fill,) = alice_v1.get("/api/v1/fills/").json()["results"]
    assert (fill["side"], fill["role"], fill["price"], fill["qty"], fill["fee_asset"]) == ("BUY", "taker", "98", "1", "BTC")
    (bob_fill,) = bob_v1.get("/api/v1/fills/?symbol=BTCUSDT").json()["results"]
    assert (bob_fill["side"], bob_fill["role"]) == ("SELL", "maker")
    r = bob_v1.post("/api/v1/orders/cancel-all/", {"symbol": "BTCUSDT"}, format="json")
    assert r.status_code == 202 and [o["price"] for o in r.json()] == ["99"]


def test_a_user_never_sees_or_cancels_another_users_order_v1(alice_v1, bob_v1):
    oid = alice_v1.post("/api/v1/orders/", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100"}, format="json").json()["id"]
    assert bob_v1.get(f"/api/v1/orders/{oid}/").status_code == 404
    assert bob_v1.delete(f"/api/v1/orders/{oid}/").status_code == 404
    assert bob_v1.get("/api/v1/orders/").json() == [] and bob_v1.get("/api/v1/orders/history/").json()["results"] == []
    assert not Order.objects.get(pk=oid).cancel_requested


def test_api_key_signed_requests_work_on_v1(client, alice):
    from tests.api.factories import signed_query

    r = client.get(f"/api/v1/orders/?{signed_query(alice[2], {})}", HTTP_X_MBX_APIKEY=alice[1])
    assert r.status_code == 200 and r.json() == []


def test_openapi_schema_documents_the_v1_trading_endpoints():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in ("/api/v1/markets/", "/api/v1/orders/", "/api/v1/fills/", "/api/v1/markets/{symbol}/candles/", "/api/v1/tickers/"):
        assert path in schema["paths"], path
