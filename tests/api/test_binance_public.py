"""Public /api/v3 endpoints: shapes follow the Binance Spot docs (string decimals, ms times)."""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from tests.api.factories import run_engine, write_trade
from trading.models import Market

pytestmark = pytest.mark.django_db


def test_ping_answers_an_empty_object_and_counts_weight(client):
    r = client.get("/api/v3/ping")
    assert r.status_code == 200 and r.json() == {}
    assert r["X-MBX-USED-WEIGHT-1M"] == "1"
    assert client.get("/api/v3/ping")["X-MBX-USED-WEIGHT-1M"] == "2"


def test_time_is_server_milliseconds(client):
    before = int(time.time() * 1000)
    server = client.get("/api/v3/time").json()["serverTime"]
    assert before <= server <= int(time.time() * 1000)


def test_exchange_info_lists_symbols_with_binance_filters(client, market):
    body = client.get("/api/v3/exchangeInfo").json()
    assert body["timezone"] == "UTC"
    assert body["rateLimits"][0] == {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
    (sym,) = body["symbols"]
    assert sym["symbol"] == "BTCUSDT" and sym["status"] == "TRADING"
    assert (sym["baseAsset"], sym["quoteAsset"], sym["baseAssetPrecision"], sym["quoteAssetPrecision"]) == ("BTC", "USDT", 8, 8)
    assert "LIMIT" in sym["orderTypes"] and "MARKET" in sym["orderTypes"]
    assert sym["permissions"] == ["SPOT"]
    filters = {f["filterType"]: f for f in sym["filters"]}
    assert Decimal(filters["PRICE_FILTER"]["tickSize"]) == Decimal("0.01")
    assert Decimal(filters["LOT_SIZE"]["stepSize"]) == Decimal("0.0001")
    assert Decimal(filters["LOT_SIZE"]["minQty"]) == Decimal("0.0001")
    assert Decimal(filters["NOTIONAL"]["minNotional"]) == Decimal("1")
    assert "MARKET_LOT_SIZE" in filters and "PERCENT_PRICE" in filters


def test_exchange_info_filters_by_symbol_and_symbols_and_maps_statuses(client, market):
    Market.objects.filter(pk=market.pk).update(status=Market.Status.CANCEL_ONLY)
    assert client.get("/api/v3/exchangeInfo?symbol=BTCUSDT").json()["symbols"][0]["status"] == "HALT"
    assert len(client.get('/api/v3/exchangeInfo?symbols=["BTCUSDT"]').json()["symbols"]) == 1
    r = client.get("/api/v3/exchangeInfo?symbol=NOPE")
    assert r.status_code == 400 and r.json() == {"code": -1121, "msg": "Invalid symbol."}


@pytest.mark.parametrize(
    "path",
    ["depth", "trades", "historicalTrades", "aggTrades", "klines?interval=1m&", "ticker/24hr", "ticker/price", "ticker/bookTicker", "avgPrice"],
)
def test_every_market_endpoint_refuses_an_unknown_symbol_with_1121(client, market, path):
    sep = "" if path.endswith("&") else "?"
    r = client.get(f"/api/v3/{path}{sep}symbol=XXXYYY")
    assert r.status_code == 400
    assert r.json() == {"code": -1121, "msg": "Invalid symbol."}


def test_missing_symbol_is_1102_and_bad_limit_is_1100(client, market):
    assert client.get("/api/v3/depth").json() == {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}
    assert client.get("/api/v3/depth?symbol=BTCUSDT&limit=abc").json()["code"] == -1100


def test_duplicate_parameter_is_1101(client, market):
    assert client.get("/api/v3/depth?symbol=BTCUSDT&symbol=BTCUSDT").json()["code"] == -1101


def test_depth_after_the_engine_carries_its_last_update_id(client, market, alice_api, bob_api):
    alice_api.post("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "99", "newOrderRespType": "ACK"})
    bob_api.post("order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "2", "price": "101", "newOrderRespType": "ACK"})
    run_engine()
    from trading.models import EngineState

    body = client.get("/api/v3/depth?symbol=BTCUSDT&limit=5").json()
    assert body["lastUpdateId"] == EngineState.objects.get(market=market).depth_update_id > 0
    assert [[Decimal(p), Decimal(q)] for p, q in body["bids"]] == [[Decimal("99"), Decimal("1")]]
    assert [[Decimal(p), Decimal(q)] for p, q in body["asks"]] == [[Decimal("101"), Decimal("2")]]
    r = client.get("/api/v3/ticker/bookTicker?symbol=BTCUSDT")
    assert Decimal(r.json()["bidPrice"]) == 99 and Decimal(r.json()["askQty"]) == 2
    used = int(r["X-MBX-USED-WEIGHT-1M"])
    assert int(client.get("/api/v3/depth?symbol=BTCUSDT&limit=500")["X-MBX-USED-WEIGHT-1M"]) == used + 25  # depth 101-500 weighs 25


def test_trades_agg_trades_and_historical_trades(client, market, alice_api, bob_api):
    bob_api.post("order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100", "newOrderRespType": "ACK"})
    bob_api.post("order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100", "newOrderRespType": "ACK"})
    run_engine()
    alice_api.post("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1.5", "price": "100", "newOrderRespType": "ACK"})
    run_engine()
    trades = client.get("/api/v3/trades?symbol=BTCUSDT").json()
    assert [(t["id"], Decimal(t["price"]), Decimal(t["qty"]), t["isBuyerMaker"]) for t in trades] == [
        (1, Decimal("100"), Decimal("1"), False),
        (2, Decimal("100"), Decimal("0.5"), False),
    ]
    assert Decimal(trades[0]["quoteQty"]) == 100 and isinstance(trades[0]["time"], int)
    (agg,) = client.get("/api/v3/aggTrades?symbol=BTCUSDT").json()
    assert (agg["a"], agg["f"], agg["l"], Decimal(agg["q"]), agg["m"]) == (1, 1, 2, Decimal("1.5"), False)
    hist = client.get("/api/v3/historicalTrades?symbol=BTCUSDT&fromId=2").json()
    assert [t["id"] for t in hist] == [2]


def test_klines_are_gap_filled_binance_rows(client, market):
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    write_trade(market, price="100", qty="1", at=now - dt.timedelta(minutes=3, seconds=-5))
    write_trade(market, price="110", qty="2", at=now - dt.timedelta(minutes=3, seconds=-10))
    rows = client.get("/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=4").json()
    assert len(rows) == 4
    first = rows[0]
    assert first[0] == int((now - dt.timedelta(minutes=3)).timestamp() * 1000) and first[6] == first[0] + 59_999
    assert [Decimal(x) for x in first[1:6]] == [100, 110, 100, 110, 3]
    assert Decimal(first[7]) == 320 and first[8] == 2 and first[11] == "0"
    for row in rows[1:]:  # empty minutes carry the close with zero volume
        assert [Decimal(x) for x in row[1:6]] == [110, 110, 110, 110, 0] and row[8] == 0
    assert client.get("/api/v3/klines?symbol=BTCUSDT&interval=7m").json() == {"code": -1120, "msg": "Invalid interval."}
    assert client.get("/api/v3/klines?symbol=BTCUSDT").json()["code"] == -1102


def test_ticker_24hr_price_and_avg_price(client, market):
    now = dt.datetime.now(dt.UTC)
    write_trade(market, price="90", qty="1", at=now - dt.timedelta(hours=30))
    write_trade(market, price="100", qty="1", at=now - dt.timedelta(hours=2))
    write_trade(market, price="120", qty="3", at=now - dt.timedelta(minutes=1))
    t = client.get("/api/v3/ticker/24hr?symbol=BTCUSDT").json()
    assert Decimal(t["openPrice"]) == 100 and Decimal(t["lastPrice"]) == 120 and Decimal(t["prevClosePrice"]) == 90
    assert Decimal(t["priceChange"]) == 20 and Decimal(t["priceChangePercent"]) == 20
    assert Decimal(t["volume"]) == 4 and Decimal(t["quoteVolume"]) == 460 and Decimal(t["weightedAvgPrice"]) == 115
    assert (t["firstId"], t["lastId"], t["count"]) == (2, 3, 2)
    assert Decimal(t["highPrice"]) == 120 and Decimal(t["lowPrice"]) == 100
    all_tickers = client.get("/api/v3/ticker/24hr")
    assert isinstance(all_tickers.json(), list) and all_tickers["X-MBX-USED-WEIGHT-1M"] == "82"
    mini = client.get("/api/v3/ticker/24hr?symbol=BTCUSDT&type=MINI").json()
    assert "bidPrice" not in mini and Decimal(mini["lastPrice"]) == 120
    assert Decimal(client.get("/api/v3/ticker/price?symbol=BTCUSDT").json()["price"]) == 120
    avg = client.get("/api/v3/avgPrice?symbol=BTCUSDT").json()
    assert avg["mins"] == 5 and Decimal(avg["price"]) == 120
    window = client.get("/api/v3/ticker?symbol=BTCUSDT&windowSize=1h").json()
    assert window["count"] == 1 and Decimal(window["openPrice"]) == 120


def test_rate_limit_429_then_418_with_retry_after(client, market, settings):
    settings.KK99 = {**settings.KK99, "BINANCE_WEIGHT_PER_MINUTE": 3}
    for expected in ("1", "2", "3"):
        assert client.get("/api/v3/ping")["X-MBX-USED-WEIGHT-1M"] == expected
    r = client.get("/api/v3/ping")
    assert r.status_code == 429 and r.json()["code"] == -1003 and int(r["Retry-After"]) >= 1
    assert "current limit is 3 request weight per 1 MINUTE" in r.json()["msg"]
    client.get("/api/v3/ping")
    banned = client.get("/api/v3/ping")
    assert banned.status_code == 418 and banned.json()["code"] == -1003 and "IP banned until" in banned.json()["msg"]
    assert int(banned["Retry-After"]) >= 60
