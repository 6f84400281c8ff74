"""One C call per run of orders gives exactly what one call per order gives."""
from __future__ import annotations

import random
from decimal import Decimal as D

import pytest

from tests.fixtures import assert_holds_match_open_orders, fund, market_create, place
from trading.engine.core import MarketEngine
from trading.models import Order, Trade
from wallets.audit import ledger_audit_run
from wallets.models import Asset

pytestmark = pytest.mark.django_db


def _scenario(market, users, seed, stops=True):
    rng = random.Random(seed)
    orders = []
    for _ in range(120):
        user = rng.choice(users)
        side = rng.choice(["BUY", "SELL"])
        r = rng.random()
        qty = str(D(rng.randint(1, 30)) / 10)
        if r < 0.7:
            price = str(D(rng.randint(9500, 10500)) / 100)
            extra = {"time_in_force": rng.choice(["GTC", "GTC", "IOC", "FOK"]), "stp_mode": rng.choice(["NONE", "EXPIRE_TAKER", "EXPIRE_BOTH", "DECREMENT"])}
            orders.append(place(user, market, side, quantity=qty, price=price, **extra))
        elif r < 0.8:
            orders.append(place(user, market, side, type="MARKET", quantity=qty))
        elif r < 0.9 and stops:
            stop = str(D(rng.randint(9500, 10500)) / 100)
            orders.append(place(user, market, side, type="STOP_LOSS_LIMIT", quantity=qty, price=stop, stop_price=stop))
        elif r >= 0.9:
            orders.append(place(user, market, side, type="LIMIT_MAKER", quantity=qty, price=str(D(rng.randint(9500, 10500)) / 100)))
    return orders


def _outcome(market):
    rank = {pk: i for i, pk in enumerate(Order.objects.filter(market=market).order_by("id").values_list("id", flat=True))}
    trades = [(t.trade_id, t.price, t.qty, rank[t.maker_order_id], rank[t.taker_order_id], t.maker_fee, t.taker_fee)
              for t in Trade.objects.filter(market=market).order_by("trade_id")]
    orders = [(rank[o.id], o.status, o.executed_qty, o.prevented_qty, o.engine_seq, o.reject_reason)
              for o in Order.objects.filter(market=market).order_by("id")]
    return trades, orders


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_book_calls_equal_one_call_per_order(btc, usdt, trader, seed, monkeypatch):
    eth = Asset.objects.create(symbol="ETH", name="Ether", precision=8)
    users = [trader() for _ in range(4)]
    for u in users:
        fund(u, eth, "100")
    batched = market_create("BTCUSDT", btc, usdt)
    single = market_create("ETHUSDT", eth, usdt)
    results = []
    for market, batch_calls in ((batched, True), (single, False)):
        monkeypatch.setattr(MarketEngine, "batch_book_calls", batch_calls)
        engine = MarketEngine(market.symbol, owner="test")
        engine.start()
        _scenario(market, users, seed)
        engine.run_until_idle()
        results.append(_outcome(market))
    assert results[0] == results[1]
    assert results[0][0], "the scenario should trade"
    assert_holds_match_open_orders()
    assert ledger_audit_run().ok


@pytest.mark.parametrize("seed,stops", [(4, False), (5, True)])
def test_with_a_band_the_one_call_batch_halts_exactly_where_one_call_per_order_does(btc, usdt, trader, seed, stops, monkeypatch):
    """The band check is in the C book, so a run of orders goes to C in one call with the band
    armed; the batch stops at the first refused print. Same outcome — trades, statuses, engine
    sequence numbers, halts and reopening auctions — as one call per order."""
    from trading.models import MarketHaltEvent, VolatilityBand

    eth = Asset.objects.create(symbol="ETH", name="Ether", precision=8)
    users = [trader() for _ in range(4)]
    for u in users:
        fund(u, eth, "100")
    results = []
    for symbol, base, batch_calls in (("BTCUSDT", btc, True), ("ETHUSDT", eth, False)):
        market = market_create(symbol, base, usdt)
        VolatilityBand.objects.create(market=market, reference_minutes=5, static_pct=D("2"), dynamic_minutes=60, dynamic_pct=D("3"), pause_seconds=0)
        monkeypatch.setattr(MarketEngine, "batch_book_calls", batch_calls)
        engine = MarketEngine(market.symbol, owner="test")
        engine.start()
        place(users[0], market, "SELL", quantity="1", price="100")
        place(users[1], market, "BUY", quantity="1", price="100")
        engine.run_until_idle()  # a band from the start: [98, 102]
        _scenario(market, users, seed, stops=stops)  # without stops every run goes to C in one call
        engine.run_until_idle()
        engine.run_until_idle()  # a halt in the last batch reopens in the next one
        halts = list(MarketHaltEvent.objects.filter(market=market).order_by("id").values_list("kind", "price", "qty", "band_low", "band_high"))
        results.append((_outcome(market), halts))
    assert results[0] == results[1]
    assert any(kind == "HALTED" for kind, *_ in results[0][1]), "the scenario should halt"
    assert_holds_match_open_orders()
    assert ledger_audit_run().ok
