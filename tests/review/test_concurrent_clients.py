"""Many concurrent clients on PostgreSQL: threads (each its own connection) for several users
place and cancel random orders through ``trading.services`` while the engine processes them in
another thread. Afterwards every order is final or resting, trades agree with the orders, every
user's locked balance equals their open orders' holds, and the ledger audit is clean."""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from decimal import Decimal as D

import pytest
from django.db import connection
from django.db.models import Sum

from tests.fixtures import assert_holds_match_open_orders, fund, market_create
from trading.errors import TradingError
from trading.models import Order, Trade
from trading.services import order_cancel, order_place
from wallets.audit import ledger_audit_run
from wallets.models import Asset

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

USERS = 6
THREADS = 12
OPS_PER_THREAD = 60
SECONDS_BUDGET = 40


@pytest.fixture
def setup(django_user_model, settings):
    settings.KK99 = {**settings.KK99, "FEE_TIER_CACHE_SECONDS": 0}
    btc = Asset.objects.get_or_create(symbol="BTC", defaults={"name": "Bitcoin", "precision": 8})[0]
    usdt = Asset.objects.get_or_create(symbol="USDT", defaults={"name": "Tether", "precision": 8})[0]
    market = market_create("BTCUSDT", btc, usdt)
    users = []
    for i in range(USERS):
        user = django_user_model.objects.create_user(email=f"crowd{i}@example.com", password="pw-not-used-123", kyc_tier=2)
        fund(user, btc, "50")
        fund(user, usdt, "20000")
        users.append(user)
    return market, users


def _engine_loop(symbol: str, stop: threading.Event, errors: list) -> None:
    from trading.engine.core import MarketEngine

    try:
        engine = MarketEngine(symbol, owner="review-crowd")
        engine.start()
        while not stop.is_set():
            if engine.run_until_idle().commands == 0:
                time.sleep(0.002)
        engine.run_until_idle()  # drain what the clients left
    except Exception as exc:
        errors.append(("engine", exc))
    finally:
        connection.close()


def _client(user, symbol: str, seed: int, deadline: float, errors: list, counts: dict) -> None:
    rng = random.Random(seed)
    mine: list[Order] = []
    try:
        for _ in range(OPS_PER_THREAD):
            if time.monotonic() > deadline:
                break
            roll = rng.random()
            try:
                if roll < 0.25 and mine:
                    order = mine.pop(rng.randrange(len(mine)))
                    order_cancel(user=user, order=order)
                    counts["cancel"] += 1
                elif roll < 0.35:
                    side = rng.choice(["BUY", "SELL"])
                    order_place(user=user, market=symbol, side=side, type="MARKET", quantity=D(rng.randint(1, 500)) / 1000)
                    counts["market"] += 1
                else:
                    side = rng.choice(["BUY", "SELL"])
                    price = D(rng.randint(9500, 10500)) / 100
                    tif = rng.choice(["GTC", "GTC", "GTC", "IOC", "FOK"])
                    order = order_place(user=user, market=symbol, side=side, type="LIMIT", price=price, quantity=D(rng.randint(10, 2000)) / 1000, time_in_force=tif)
                    mine.append(order)
                    counts["limit"] += 1
            except TradingError as exc:  # insufficient balance, already final, no reference …: expected refusals
                counts[f"refused:{exc.code}"] += 1
    except Exception as exc:
        errors.append((user.pk, exc))
    finally:
        connection.close()


def test_many_concurrent_clients_leave_orders_trades_holds_and_ledger_consistent(setup):
    market, users = setup
    stop, errors = threading.Event(), []
    counts: dict[str, int] = defaultdict(int)
    engine = threading.Thread(target=_engine_loop, args=(market.symbol, stop, errors), daemon=True)
    engine.start()
    deadline = time.monotonic() + SECONDS_BUDGET
    clients = [
        threading.Thread(target=_client, args=(users[i % USERS], market.symbol, 1000 + i, deadline, errors, counts), daemon=True)
        for i in range(THREADS)
    ]
    for t in clients:
        t.start()
    for t in clients:
        t.join(SECONDS_BUDGET + 10)
    stop.set()
    engine.join(30)
    assert not engine.is_alive(), "the engine did not drain"
    assert not errors, errors
    assert counts["limit"] + counts["market"] > THREADS * 5, dict(counts)

    # every order reached a final or resting state; no cancel is left pending
    orders = list(Order.objects.filter(market=market))
    stuck = [(o.pk, o.status, o.cancel_requested) for o in orders if o.status not in (*Order.FINAL_STATUSES, *Order.RESTING_STATUSES) or (o.cancel_requested and o.is_open)]
    assert stuck == []
    assert Trade.objects.filter(market=market).exists(), dict(counts)

    # each order's executed quantity is the sum of its trades
    executed = defaultdict(D)
    for maker, taker, qty in Trade.objects.filter(market=market).values_list("maker_order_id", "taker_order_id", "qty"):
        executed[maker] += qty
        if taker != maker:
            executed[taker] += qty
    mismatched = [(o.pk, o.executed_qty, executed.get(o.pk, D(0))) for o in orders if o.executed_qty != executed.get(o.pk, D(0))]
    assert mismatched == []
    assert all(o.executed_qty <= o.quantity for o in orders if o.quantity is not None)
    assert Trade.objects.filter(market=market).aggregate(s=Sum("qty"))["s"] > 0

    # locked == the holds of open orders (and finished orders hold nothing), and the ledger is whole
    assert_holds_match_open_orders()
    report = ledger_audit_run()
    assert report.ok, report.render()
