"""An unmodified Binance client library (binance-connector, pinned in the test extra) works
against KK99 by changing only the base URL — through a real HTTP server."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.api.factories import make_market, make_trader, run_engine

spot = pytest.importorskip("binance.spot")
binance_error = pytest.importorskip("binance.error")


@pytest.fixture
def api(live_server, transactional_db, django_user_model):
    make_market()
    _, key, secret = make_trader(django_user_model, funds={"USDT": "10000", "BTC": "10"})
    return spot.Spot(api_key=key, api_secret=secret, base_url=live_server.url)


def test_binance_connector_trades_against_kk99(api):
    assert api.ping() == {}
    assert api.time()["serverTime"] > 0
    info = api.exchange_info(symbol="BTCUSDT")
    assert info["symbols"][0]["baseAsset"] == "BTC"

    placed = api.new_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5", price="100", newOrderRespType="RESULT")
    assert placed["status"] == "NEW"
    run_engine()
    assert Decimal(api.depth("BTCUSDT", limit=5)["asks"][0][0]) == 100
    assert api.get_order("BTCUSDT", orderId=placed["orderId"])["status"] == "NEW"
    assert [o["orderId"] for o in api.get_open_orders("BTCUSDT")] == [placed["orderId"]]

    api.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.2", newOrderRespType="ACK")
    run_engine()
    assert {Decimal(t["qty"]) for t in api.my_trades("BTCUSDT")} == {Decimal("0.2")}
    assert Decimal(api.ticker_price("BTCUSDT")["price"]) == 100
    assert len(api.klines("BTCUSDT", "1m", limit=5)) >= 1
    assert Decimal(api.ticker_24hr("BTCUSDT")["volume"]) == Decimal("0.2")

    api.cancel_order("BTCUSDT", orderId=placed["orderId"])
    run_engine()
    assert api.get_order("BTCUSDT", orderId=placed["orderId"])["status"] == "CANCELED"
    balances = {b["asset"]: b for b in api.account()["balances"]}
    assert Decimal(balances["BTC"]["locked"]) == 0

    with pytest.raises(binance_error.ClientError) as refused:
        api.get_order("BTCUSDT", orderId=424242)
    assert refused.value.error_code == -2013 and refused.value.error_message == "Order does not exist."
    with pytest.raises(binance_error.ClientError) as bad:
        api.new_order(symbol="NOPE", side="BUY", type="MARKET", quantity="1")
    assert bad.value.error_code == -1121
