"""The stored mark price (marketdata.mark): self-trades do not count, a wick is capped, the
first mark is computed on read, the row is the one the next update anchors on."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from marketdata.mark import MarkParams, mark_price, mark_update
from marketdata.models import MarkPrice
from tests.api.factories import make_market
from trading.models import Order, Trade

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
PARAMS = MarkParams(window_seconds=60, trade_cap=Decimal("0.05"), mid_band=None)


def _user(email):
    return get_user_model().objects.get_or_create(email=email)[0]


def _trade(market, *, price, at, maker, taker):
    order = Order.objects.create(
        user=maker, market=market, side="BUY", type="LIMIT", price=Decimal("1"), quantity=Decimal("1"),
        held_asset=market.quote, held_amount=Decimal("0"), held_remaining=Decimal("0"), status=Order.Status.FILLED,
        client_order_id=f"t{Order.objects.count()}",
    )
    last = Trade.objects.filter(market=market).order_by("-trade_id").values_list("trade_id", flat=True).first() or 0
    price = Decimal(price)
    return Trade.objects.create(
        market=market, trade_id=last + 1, engine_seq=last + 1, price=price, qty=Decimal(1), quote_qty=price, maker_order=order,
        maker_user=maker, taker_order=order, taker_user=taker, is_buyer_maker=False, maker_fee_asset=market.quote,
        taker_fee_asset=market.quote, created_at=at,
    )


@pytest.fixture
def market():
    return make_market(reference_price=Decimal("100"))


def test_self_trades_never_move_the_mark(market):
    a, b = _user("a@example.com"), _user("b@example.com")
    _trade(market, price="100", at=NOW - dt.timedelta(seconds=50), maker=a, taker=b)
    _trade(market, price="10", at=NOW - dt.timedelta(seconds=40), maker=a, taker=a)  # a self-trade wick
    assert mark_update(market=market, now=NOW, params=PARAMS) == Decimal("100.00")
    assert MarkPrice.objects.get(market=market).price == Decimal("100.00")


def test_a_wick_between_two_users_moves_the_stored_mark_at_most_the_cap_per_update(market):
    a, b = _user("a@example.com"), _user("b@example.com")
    _trade(market, price="1", at=NOW - dt.timedelta(seconds=60), maker=a, taker=b)
    first = mark_update(market=market, now=NOW, params=PARAMS)
    assert first == Decimal("95.00")  # anchored on the reference price 100, capped at −5 %
    second = mark_update(market=market, now=NOW + dt.timedelta(seconds=1), params=PARAMS)
    assert second == Decimal("90.25")  # anchored on 95 now: one more capped step


def test_mark_price_computes_the_first_mark_on_read_and_then_reads_the_row(market):
    assert not MarkPrice.objects.exists()
    assert mark_price(market) == Decimal("100.00")  # no trade yet: the reference price
    MarkPrice.objects.filter(market=market).update(price=Decimal("123.45"))
    assert mark_price("btcusdt") == Decimal("123.45")


@pytest.mark.django_db
def test_a_first_mark_inserted_concurrently_is_not_a_duplicate_key_error(market, monkeypatch):
    """Two first computations race (an API read and the engine's hook): the other one inserts
    the row between this one's locking read (nothing to lock yet) and its insert. Found as a
    500 on GET /sapi/v1/margin/account under uvicorn (tests/production/test_uvicorn_margin.py)."""
    import marketdata.mark as mark_module

    real = mark_module._window_average

    def competitor_first(m, **kw):
        if not MarkPrice.objects.filter(market=m).exists():
            MarkPrice.objects.create(market=m, price=Decimal("123.00"), updated_at=kw["now"])  # the other updater's row
        return real(m, **kw)

    monkeypatch.setattr(mark_module, "_window_average", competitor_first)
    assert mark_update(market=market, now=NOW, params=PARAMS) == Decimal("100.00")
    assert MarkPrice.objects.get(market=market).price == Decimal("123.00")  # theirs stands; ours is not an error


def test_the_window_average_summed_in_the_database_equals_the_python_rule(market):
    """The engine's hook recomputes the mark after every traded batch; PostgreSQL sums the
    window (one row back, not every trade of the last minute). Random windows — trades before
    the window, at its start, at one instant, self-trades, prices beyond either clamp — give
    the same Decimal as clamped_time_average over the loaded trades."""
    import random

    from marketdata.mark import _window_average, _window_trades, clamped_time_average

    users = [_user(f"w{i}@example.com") for i in range(3)]
    rng = random.Random(5)
    start = NOW - dt.timedelta(seconds=60)
    for case in range(25):
        Trade.objects.filter(market=market).delete()
        instants = [start + dt.timedelta(microseconds=rng.randint(-5_000_000, 60_000_000)) for _ in range(rng.randint(0, 6))]
        if case % 5 == 0:
            instants += [start, start]  # exactly at the window's start
        if case % 7 == 0:
            instants = [NOW] * 3  # all at one instant (zero total weight)
        for at in sorted(instants):
            maker, taker = rng.choice(users), rng.choice(users)
            _trade(market, price=f"{rng.randint(1, 40000) / 100:.2f}", at=at, maker=maker, taker=taker)
        low, high = sorted((Decimal(rng.randint(1, 30000)) / 100, Decimal(rng.randint(1, 30000)) / 100))
        points, before = _window_trades(market, start=start, now=NOW)
        expected = clamped_time_average(points, start=start, now=NOW, before=before, low=low, high=high)
        assert _window_average(market, start=start, now=NOW, low=low, high=high) == expected, case
