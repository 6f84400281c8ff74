"""Candles: bucketing on Binance's boundaries and gap-filling, on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from marketdata import selectors
from marketdata.intervals import INTERVALS
from tests.api.factories import make_market, write_trade

pytestmark = pytest.mark.django_db
UTC = dt.UTC
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def market():
    return make_market()


def test_interval_boundaries_match_binance():
    when = dt.datetime(2026, 3, 5, 13, 47, 31, tzinfo=UTC)  # a Thursday
    assert INTERVALS["1m"].floor(when) == dt.datetime(2026, 3, 5, 13, 47, tzinfo=UTC)
    assert INTERVALS["15m"].floor(when) == dt.datetime(2026, 3, 5, 13, 45, tzinfo=UTC)
    assert INTERVALS["4h"].floor(when) == dt.datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    assert INTERVALS["1d"].floor(when) == dt.datetime(2026, 3, 5, tzinfo=UTC)
    assert INTERVALS["1w"].floor(when) == dt.datetime(2026, 3, 2, tzinfo=UTC)  # Monday
    assert INTERVALS["1M"].floor(when) == dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert INTERVALS["1M"].add(dt.datetime(2026, 12, 1, tzinfo=UTC)) == dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert INTERVALS["1M"].add(dt.datetime(2026, 1, 1, tzinfo=UTC), -1) == dt.datetime(2025, 12, 1, tzinfo=UTC)


def test_candles_aggregate_ohlcv_in_each_bucket(market):
    write_trade(market, price="100", qty="1", at=T0 + dt.timedelta(seconds=5))
    write_trade(market, price="105", qty="2", at=T0 + dt.timedelta(seconds=20), buyer_maker=True)
    write_trade(market, price="95", qty="1", at=T0 + dt.timedelta(seconds=40))
    write_trade(market, price="101", qty="3", at=T0 + dt.timedelta(seconds=59, microseconds=999999))
    (c,) = selectors.candles_for_market(market=market, interval=INTERVALS["1m"], start=T0, end=T0, now=T0 + dt.timedelta(hours=1))
    assert (c.open, c.high, c.low, c.close, c.volume, c.trades) == (100, 105, 95, 101, 7, 4)
    assert c.quote_volume == Decimal("100") + 210 + 95 + 303
    assert c.taker_buy_volume == 5 and c.taker_buy_quote_volume == Decimal("100") + 95 + 303
    assert c.close_time == T0 + dt.timedelta(seconds=59, milliseconds=999)


def test_empty_intervals_carry_the_previous_close_with_zero_volume(market):
    write_trade(market, price="100", qty="1", at=T0 + dt.timedelta(seconds=1))
    write_trade(market, price="110", qty="1", at=T0 + dt.timedelta(minutes=3, seconds=1))
    candles = selectors.candles_for_market(market=market, interval=INTERVALS["1m"], start=T0, limit=10, now=T0 + dt.timedelta(minutes=5, seconds=30))
    assert [c.open_time for c in candles] == [T0 + dt.timedelta(minutes=i) for i in range(6)]
    assert [(c.open, c.close, c.volume, c.trades) for c in candles] == [
        (100, 100, 1, 1), (100, 100, 0, 0), (100, 100, 0, 0), (110, 110, 1, 1), (110, 110, 0, 0), (110, 110, 0, 0),
    ]


def test_gap_fill_uses_the_close_from_before_the_window(market):
    write_trade(market, price="90", qty="1", at=T0 - dt.timedelta(hours=5))
    candles = selectors.candles_for_market(market=market, interval=INTERVALS["1h"], end=T0, limit=3, now=T0)
    assert [(c.open_time.hour, c.open, c.close, c.volume) for c in candles] == [(8, 90, 90, 0), (9, 90, 90, 0), (10, 90, 90, 0)]


def test_no_candles_before_the_first_trade(market):
    write_trade(market, price="100", qty="1", at=T0 + dt.timedelta(minutes=2))
    candles = selectors.candles_for_market(market=market, interval=INTERVALS["1m"], start=T0 - dt.timedelta(hours=1), limit=5, now=T0 + dt.timedelta(minutes=3))
    assert [c.open_time for c in candles] == [T0 + dt.timedelta(minutes=2), T0 + dt.timedelta(minutes=3)]
    assert selectors.candles_for_market(market=market, interval=INTERVALS["1m"], end=T0, limit=5, now=T0) == []


@pytest.mark.parametrize("name", ["3m", "5m", "15m", "30m", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"])
def test_every_interval_puts_trades_in_the_bucket_its_floor_says(market, name):
    interval = INTERVALS[name]
    times = [T0 + dt.timedelta(minutes=m) for m in (0, 7, 61, 600, 1500, 5000, 20000, 50000)]
    if not interval.is_month:  # stay within one request's 1000 candles
        times = [t for t in times if t < T0 + dt.timedelta(seconds=interval.seconds * 999)]
    for i, at in enumerate(times):
        write_trade(market, price=100 + i, qty="1", at=at)
    candles = selectors.candles_for_market(market=market, interval=interval, start=times[0], end=times[-1], limit=1000, now=times[-1])
    by_open = {c.open_time: c for c in candles}
    for at in times:
        assert by_open[interval.floor(at)].trades >= 1
    assert sum(c.trades for c in candles) == len(times)
    assert all(interval.add(a.open_time) == b.open_time for a, b in zip(candles, candles[1:]))  # gap-free


@pytest.mark.postgres
def test_sql_date_bin_buckets_equal_the_python_buckets(market):
    for i in range(40):
        write_trade(market, price=100 + (i * 7) % 13, qty=Decimal("0.5") + i, at=T0 + dt.timedelta(minutes=i * 37, seconds=i), buyer_maker=bool(i % 3))
    start, end = T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=3)
    for name in ("1m", "5m", "1h", "4h", "1d", "1w", "1M"):
        interval = INTERVALS[name]
        sql = selectors._aggregate_sql(market, interval, interval.floor(start), end)
        py = selectors._aggregate_python(market, interval, interval.floor(start), end)
        assert sql == py, name
