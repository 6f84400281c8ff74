"""The demo market maker replaces its ladder without ever emptying a side of the book (issue 17:
the trading page showed "No asks" in 4 of 60 samples because the bot cancelled everything and
then placed the new ladder).

* ``requote_plan`` on a model book (Hypothesis): after every single request both sides hold
  orders, no new order crosses one of the maker's own resting orders, and the end state is
  exactly the new ladder.
* The real thing: the bot's ``_quote`` against a live server and the real matching engine; the
  engine runs after *every* request the bot makes, and the public depth is sampled right then.
"""
from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kk99.management.commands.demo_bot import ApiClient, Command, requote_plan
from tests.api.factories import make_market, make_trader, run_engine

D = Decimal


ONE = Decimal(1)


def ladder(mid: Decimal, spread: Decimal, levels: int, qty: Decimal = ONE):
    bids = [(mid - spread * k, qty) for k in range(1, levels + 1) if mid - spread * k > 0]
    asks = [(mid + spread * k, qty) for k in range(1, levels + 1)]
    return bids, asks


def apply_plan_checking_every_step(old: list[dict], bids, asks) -> dict[int, tuple[str, Decimal]]:
    book = {o["orderId"]: (o["side"], D(o["price"])) for o in old}
    next_id = max(book, default=0) + 1
    for step in requote_plan(old, bids, asks):
        if step.action == "place":
            if step.side == "BUY":
                assert all(p > step.price for s, p in book.values() if s == "SELL"), f"buy at {step.price} crosses an own ask"
            else:
                assert all(p < step.price for s, p in book.values() if s == "BUY"), f"sell at {step.price} crosses an own bid"
            book[next_id] = (step.side, step.price)
            next_id += 1
        else:
            del book[step.order_id]
        sides = {s for s, _ in book.values()}
        assert sides == {"BUY", "SELL"}, f"a side is empty after {step}"
    return book


@settings(max_examples=300, deadline=None)
@given(
    old_mid=st.integers(1_000, 100_000),
    move=st.integers(-5_000, 5_000),
    levels=st.integers(1, 8),
    spread=st.integers(1, 300),
)
def test_every_intermediate_book_of_a_requote_has_both_sides_and_no_self_cross(old_mid, move, levels, spread):
    new_mid = max(old_mid + move, spread * levels + 1)
    old_bids, old_asks = ladder(D(old_mid), D(spread), levels)
    old = [{"orderId": i, "side": "BUY", "price": str(p)} for i, (p, _) in enumerate(old_bids, 1)]
    old += [{"orderId": 100 + i, "side": "SELL", "price": str(p)} for i, (p, _) in enumerate(old_asks, 1)]
    bids, asks = ladder(D(new_mid), D(spread), levels)

    book = apply_plan_checking_every_step(old, bids, asks)

    assert sorted(p for s, p in book.values() if s == "BUY") == sorted(p for p, _ in bids)
    assert sorted(p for s, p in book.values() if s == "SELL") == sorted(p for p, _ in asks)


def test_the_plan_places_a_side_before_it_cancels_that_sides_old_orders():
    old = [{"orderId": 1, "side": "BUY", "price": "99"}, {"orderId": 2, "side": "SELL", "price": "101"}]
    plan = requote_plan(old, [(D("104"), D(1))], [(D("106"), D(1))])  # the mid jumped from 100 to 105
    assert [(s.action, s.side) for s in plan] == [("place", "SELL"), ("cancel", "SELL"), ("place", "BUY"), ("cancel", "BUY")]


class SamplingClient(ApiClient):
    """The maker's client: after each of its requests the engine processes everything pending
    and the public depth is recorded — the book as any viewer could see it at that moment."""

    def __init__(self, base_url, key, secret, public: ApiClient, samples: list) -> None:
        super().__init__(base_url, key, secret)
        self.public, self.samples = public, samples

    def call(self, method, path, params=None, *, signed=False):
        result = super().call(method, path, params, signed=signed)
        run_engine()
        depth = self.public.call("GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 50})
        self.samples.append((method, path, len(depth["bids"]), len(depth["asks"])))
        return result


@pytest.fixture(autouse=True)
def _no_engine_waits(settings):
    # The test drives the engine itself, after every request.
    settings.KK99 = {**settings.KK99, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 0, "BINANCE_CANCEL_WAIT_SECONDS": 0}


def test_the_engines_book_never_has_an_empty_side_while_the_bot_requotes(live_server, transactional_db, django_user_model):
    make_market()
    public = ApiClient(live_server.url)
    samples: list = []
    _, mkey, msecret = make_trader(django_user_model, funds={"BTC": "1000", "USDT": "1000000"})
    _, tkey, tsecret = make_trader(django_user_model, funds={"BTC": "1000", "USDT": "1000000"})
    maker = SamplingClient(live_server.url, mkey, msecret, public, samples)
    taker = ApiClient(live_server.url, tkey, tsecret)
    info = {s["symbol"]: s for s in public.call("GET", "/api/v3/exchangeInfo")["symbols"]}["BTCUSDT"]
    random.seed(17)
    mids = {"BTCUSDT": D("100")}
    bot = Command()

    bot._quote(public, maker, taker, "BTCUSDT", info, mids, 4)  # the first ladder on an empty book
    run_engine()
    samples.clear()
    for _ in range(6):
        bot._quote(public, maker, taker, "BTCUSDT", info, mids, 4)
        run_engine()

    assert sum(1 for s in samples if s[1] == "/api/v3/order" and s[0] == "DELETE") >= 20, "the bot did not re-quote"
    empty = [s for s in samples if not s[2] or not s[3]]
    assert not empty, f"{len(empty)} of {len(samples)} samples had an empty side: {empty[:5]}"
    assert max(s[2] for s in samples) >= 4 and max(s[3] for s in samples) >= 4
