"""24-hour tickers, last price, VWAP and TWAP."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from marketdata import selectors
from tests.api.factories import make_market, write_trade

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def market():
    return make_market()


def test_ticker_rolls_over_24_hours(market):
    write_trade(market, price="80", qty="1", at=NOW - dt.timedelta(hours=25))
    write_trade(market, price="100", qty="2", at=NOW - dt.timedelta(hours=23))
    write_trade(market, price="90", qty="1", at=NOW - dt.timedelta(hours=10))
    write_trade(market, price="125", qty="1", at=NOW - dt.timedelta(minutes=1))
    t = selectors.ticker_for_market(market=market, now=NOW)
    assert (t.open, t.high, t.low, t.last, t.prev_close) == (100, 125, 90, 125, 80)
    assert t.change == 25 and t.change_percent == Decimal("25.000")
    assert (t.volume, t.quote_volume, t.count, t.first_id, t.last_id) == (4, 415, 3, 2, 4)
    assert t.vwap == Decimal("103.75")


def test_ticker_without_trades_in_the_window_carries_the_previous_close(market):
    write_trade(market, price="80", qty="1", at=NOW - dt.timedelta(days=3))
    t = selectors.ticker_for_market(market=market, now=NOW)
    assert (t.open, t.last, t.volume, t.count, t.first_id, t.change) == (80, 80, 0, 0, -1, 0)
    empty = selectors.ticker_for_market(market=make_market("ETHUSDT"), now=NOW)
    assert empty.last is None and empty.count == 0


def test_vwap_weights_by_quantity(market):
    write_trade(market, price="100", qty="3", at=NOW - dt.timedelta(minutes=30))
    write_trade(market, price="200", qty="1", at=NOW - dt.timedelta(minutes=20))
    assert selectors.vwap(market=market, start=NOW - dt.timedelta(hours=1), end=NOW) == 125
    assert selectors.vwap(market=market, start=NOW - dt.timedelta(minutes=5), end=NOW) is None


def test_twap_weights_each_price_by_how_long_it_stood(market):
    write_trade(market, price="100", qty="1", at=NOW - dt.timedelta(hours=2))
    write_trade(market, price="200", qty="50", at=NOW - dt.timedelta(minutes=15))
    # the last hour: 100 for 45 minutes, 200 for 15 minutes → 125 (volume plays no part)
    assert selectors.twap(market=market, start=NOW - dt.timedelta(hours=1), end=NOW) == 125
    # from the first trade on when nothing came before the window
    assert selectors.twap(market=market, start=NOW - dt.timedelta(hours=3), end=NOW) == Decimal(100 * 105 + 200 * 15) / 120


def test_last_price_and_avg_price(market):
    assert selectors.last_price(market=market) is None
    write_trade(market, price="100", qty="1", at=NOW - dt.timedelta(minutes=30))
    write_trade(market, price="110", qty="1", at=NOW - dt.timedelta(minutes=2))
    write_trade(market, price="120", qty="3", at=NOW - dt.timedelta(minutes=1))
    assert selectors.last_price(market=market) == 120
    price, closed = selectors.avg_price(market=market, now=NOW)
    assert price == Decimal("117.5") and closed == NOW - dt.timedelta(minutes=1)
