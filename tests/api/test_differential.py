"""Differential check: random orders sent through POST /api/v3/order and matched by the
engine (driven in-process) produce exactly the trades a tiny reference model predicts —
price-time priority, trades at the maker's price, IOC remainders and market leftovers
expire."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from tests.api.factories import BinanceClient, make_trader, run_engine
from trading.models import Trade

pytestmark = pytest.mark.django_db


def reference_trades(orders: list[dict]) -> list[tuple]:
    """(price, qty, maker client id, taker client id) for ``orders`` in arrival order."""
    bids: list[list] = []  # [price, seq, cid, remaining], best first
    asks: list[list] = []
    trades = []
    for seq, o in enumerate(orders):
        qty = Decimal(o["quantity"])
        price = Decimal(o["price"]) if "price" in o else None
        buy = o["side"] == "BUY"
        opposite = asks if buy else bids
        while qty > 0 and opposite:
            best = opposite[0]
            if price is not None and (best[0] > price if buy else best[0] < price):
                break
            fill = min(qty, best[3])
            trades.append((best[0], fill, best[2], o["newClientOrderId"]))
            qty -= fill
            best[3] -= fill
            if best[3] == 0:
                opposite.pop(0)
        if qty > 0 and o["type"] == "LIMIT" and o.get("timeInForce") == "GTC":
            side = bids if buy else asks
            side.append([price, seq, o["newClientOrderId"], qty])
            side.sort(key=(lambda r: (-r[0], r[1])) if buy else (lambda r: (r[0], r[1])))
    return trades


def random_orders(rng: random.Random, n: int) -> list[dict]:
    orders = []
    for i in range(n):
        side = rng.choice(["BUY", "SELL"])
        qty = str(Decimal(rng.randint(1, 30)) / 10)
        kind = rng.random()
        o = {"symbol": "BTCUSDT", "side": side, "quantity": qty, "newClientOrderId": f"o{i}", "newOrderRespType": "ACK"}
        if kind < 0.8:
            o |= {"type": "LIMIT", "timeInForce": "GTC", "price": str(rng.randint(95, 105))}
        elif kind < 0.9:
            o |= {"type": "LIMIT", "timeInForce": "IOC", "price": str(rng.randint(95, 105))}
        else:
            o |= {"type": "MARKET"}
        orders.append(o)
    return orders


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("engine_every", [1, 7])
def test_trades_through_the_api_equal_the_reference_model(client, market, django_user_model, seed, engine_every):
    rng = random.Random(seed)
    apis = [BinanceClient(client, *make_trader(django_user_model, funds={"USDT": "1000000", "BTC": "1000"})[1:]) for _ in range(3)]
    orders = random_orders(rng, 60)
    for i, order in enumerate(orders):
        r = rng.choice(apis).post("order", order)
        assert r.status_code == 200, r.json()
        if (i + 1) % engine_every == 0:
            run_engine()
    run_engine()
    got = [
        (t.price, t.qty, t.maker_order.client_order_id, t.taker_order.client_order_id)
        for t in Trade.objects.select_related("maker_order", "taker_order").order_by("trade_id")
    ]
    assert got == reference_trades(orders)
    assert len(got) > 10
