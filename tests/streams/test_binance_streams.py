"""Binance-compatible market streams: the subscribe protocol, raw and combined forms, payload
shapes, and the diff-depth contract (contiguous U/u, consistent with /api/v3/depth)."""
from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal as D

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client

from tests.streams.helpers import as_json, connect, drain, receive_until
from trading.streams.binance import stream_parse

pytestmark = pytest.mark.django_db


def test_stream_names_parse_like_binance():
    assert stream_parse("btcusdt@depth@100ms").speed_ms == 100
    assert stream_parse("btcusdt@depth").speed_ms == 1000
    assert stream_parse("btcusdt@depth10").levels == 10
    assert stream_parse("btcusdt@kline_15m").interval == "15m"
    assert stream_parse("!miniTicker@arr").kind == "allMiniTickers"
    assert stream_parse("btcusdt@kline_7m") is None
    assert stream_parse("BTCUSDT@trade") is None  # Binance stream names are lower case
    assert stream_parse("btcusdt@nope") is None


def test_subscribe_unsubscribe_and_list_are_answered_with_result_and_id(market):
    async def scenario():
        comm = await connect("/ws/btcusdt@trade")
        await comm.send_to(text_data=json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", "btcusdt@bookTicker"], "id": 1}))
        assert as_json(await comm.receive_from(timeout=2)) == {"result": None, "id": 1}
        await comm.send_to(text_data=json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "two"}))
        assert as_json(await comm.receive_from(timeout=2)) == {"result": ["btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@bookTicker"], "id": "two"}
        await comm.send_to(text_data=json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}))
        assert as_json(await comm.receive_from(timeout=2)) == {"result": None, "id": 3}
        await comm.send_to(text_data=json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
        assert as_json(await comm.receive_from(timeout=2))["result"] == ["btcusdt@depth@100ms", "btcusdt@bookTicker"]
        await comm.send_to(text_data=json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bogus"], "id": 5}))
        error = as_json(await comm.receive_from(timeout=2))
        assert error["id"] == 5 and error["code"] == 2
        await comm.send_to(text_data="not json")
        assert as_json(await comm.receive_from(timeout=2))["code"] == 3
        await comm.send_to(text_data=json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 6}))
        assert as_json(await comm.receive_from(timeout=2)) == {"result": False, "id": 6}
        await comm.disconnect()

    async_to_sync(scenario)()


def test_combined_stream_wraps_payloads_and_trades_carry_no_user_data(market, exchange, alice, bob):
    async def scenario():
        comm = await connect("/stream?streams=btcusdt@trade/btcusdt@aggTrade/btcusdt@bookTicker")
        await exchange.place(alice, "SELL", "100.00", "0.5")
        await exchange.place(alice, "SELL", "100.00", "0.5")
        await exchange.place(bob, "BUY", "100.00", "1")
        await exchange.place(bob, "BUY", "99.00", "0.3")
        await exchange.match()
        msgs = await drain(comm, 0.6, parse=as_json)
        by_stream = {}
        for m in msgs:
            assert set(m) == {"stream", "data"}
            by_stream.setdefault(m["stream"], []).append(m["data"])
        trades = by_stream["btcusdt@trade"]
        assert [t["t"] for t in trades] == [1, 2]
        assert set(trades[0]) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
        assert trades[0]["e"] == "trade" and trades[0]["s"] == "BTCUSDT" and trades[0]["m"] is False
        aggs = by_stream["btcusdt@aggTrade"]
        assert len(aggs) == 1 and aggs[0]["a"] == 1 and aggs[0]["f"] == 1 and aggs[0]["l"] == 2 and D(aggs[0]["q"]) == D("1")
        assert by_stream["btcusdt@bookTicker"][-1] == {"u": 1, "s": "BTCUSDT", "b": "99.00", "B": "0.300", "a": "0", "A": "0"}
        await comm.disconnect()

    async_to_sync(scenario)()


def test_partial_depth_kline_and_tickers(market, exchange, alice, bob, monkeypatch):
    from trading.streams import feed as feed_module

    monkeypatch.setattr(feed_module, "SLOW_TICKS", 2)  # 1 s streams every 200 ms in this test

    async def scenario():
        comm = await connect("/ws/btcusdt@depth5@100ms/btcusdt@kline_1m/btcusdt@miniTicker/btcusdt@ticker/!miniTicker@arr")
        await exchange.place(alice, "SELL", "101.00", "2")
        await exchange.place(bob, "BUY", "99.00", "2")
        await exchange.place(bob, "BUY", "101.00", "1")
        await exchange.match()
        msgs = await drain(comm, 1.5, parse=as_json)
        partial = [m for m in msgs if isinstance(m, dict) and "lastUpdateId" in m]
        assert partial[-1] == {"lastUpdateId": 1, "bids": [["99.00", "2.000"]], "asks": [["101.00", "1.000"]]} or partial[-1]["bids"][0][0] == "99.00"
        klines = [m for m in msgs if isinstance(m, dict) and m.get("e") == "kline"]
        assert klines and klines[-1]["k"]["i"] == "1m" and klines[-1]["k"]["c"] == "101" and klines[-1]["k"]["n"] == 1
        minis = [m for m in msgs if isinstance(m, dict) and m.get("e") == "24hrMiniTicker"]
        tickers = [m for m in msgs if isinstance(m, dict) and m.get("e") == "24hrTicker"]
        arrays = [m for m in msgs if isinstance(m, list)]
        assert minis and minis[-1]["c"] == "101"
        assert tickers and tickers[-1]["n"] == 1 and tickers[-1]["b"] == "99.00"
        assert arrays and arrays[-1][0]["s"] == "BTCUSDT"
        await comm.disconnect()

    async_to_sync(scenario)()


def _rebuild(snapshot: dict, events: list[dict]) -> tuple[dict, dict]:
    """Binance's documented local order book recipe."""
    last_id = snapshot["lastUpdateId"]
    bids = {D(p): D(q) for p, q in snapshot["bids"]}
    asks = {D(p): D(q) for p, q in snapshot["asks"]}
    events = [e for e in events if e["u"] > last_id]
    assert events, "no event after the snapshot"
    assert events[0]["U"] <= last_id + 1 <= events[0]["u"], (last_id, events[0]["U"], events[0]["u"])
    prev = None
    for e in events:
        if prev is not None:
            assert e["U"] == prev + 1, f"gap: {prev} → {e['U']}"
        for side, rows in ((bids, e["b"]), (asks, e["a"])):
            for p, q in rows:
                if D(q) == 0:
                    side.pop(D(p), None)
                else:
                    side[D(p)] = D(q)
        prev = e["u"]
    return bids, asks


@pytest.mark.parametrize("speed", ["@100ms", ""])
def test_diff_depth_rebuilt_from_rest_snapshot_equals_the_engine_book(market, exchange, trader, speed, monkeypatch):
    """Random order stream; the local book from /api/v3/depth + @depth events must equal the
    engine's committed book — also across a lost event the feed repairs."""
    import kk99.publish as publish
    from trading.streams import feed as feed_module

    monkeypatch.setattr(feed_module, "SLOW_TICKS", 3)
    users = [trader() for _ in range(4)]
    rng = random.Random(20261125)
    client = Client()

    def rest_depth():
        """What /api/v3/depth answers (marketdata.selectors.book_depth). On SQLite through the
        HTTP endpoint itself; on PostgreSQL through its selector, because a request through the
        test client inside this test's transaction closes the shared connection there."""
        from django.db import connection

        if connection.vendor == "sqlite":
            r = client.get("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 100})
            assert r.status_code == 200, r.content
            return r.json()
        from marketdata.selectors import book_depth

        book = book_depth(market=market, limit=100)
        return {"lastUpdateId": book["last_update_id"], "bids": book["bids"], "asks": book["asks"]}

    async def scenario():
        comm = await connect(f"/ws/btcusdt@depth{speed}")
        # Some history before the client takes its snapshot.
        for _ in range(15):
            await exchange.place(rng.choice(users), rng.choice(["BUY", "SELL"]), f"{rng.randint(9500, 10500) / 100:.2f}", f"{rng.randint(1, 50) / 10:.3f}")
            await exchange.match()
        await asyncio.sleep(0.4)
        snapshot = await sync_to_async(rest_depth)()
        real = publish._send
        orders = []
        for i in range(80):
            if i == 40:  # one depth event lost between commit and publish
                monkeypatch.setattr(publish, "_send", lambda kind, payload, groups: None if kind == "depth.diff" else real(kind, payload, groups))
            if i == 41:
                monkeypatch.setattr(publish, "_send", real)
            user = rng.choice(users)
            if orders and rng.random() < 0.2:
                o = orders.pop(rng.randrange(len(orders)))
                try:
                    await exchange.cancel(o.user, o)
                except Exception:  # already filled
                    pass
            else:
                orders.append(await exchange.place(user, rng.choice(["BUY", "SELL"]), f"{rng.randint(9500, 10500) / 100:.2f}", f"{rng.randint(1, 50) / 10:.3f}"))
            await exchange.match()
            if i % 7 == 0:
                await asyncio.sleep(0.12)
        final_id = (await sync_to_async(rest_depth)())["lastUpdateId"]
        events, _ = await receive_until(comm, lambda m: m["u"] >= final_id, timeout=5, parse=as_json)
        all_events = _ + []
        bids, asks = _rebuild(snapshot, all_events)
        engine_bids, engine_asks = exchange.book()
        assert bids == engine_bids and asks == engine_asks
        assert all(e["e"] == "depthUpdate" and e["s"] == "BTCUSDT" for e in all_events)
        await comm.disconnect()

    async_to_sync(scenario)()
