"""margin.span_inputs: the volatility behind the scan ranges is Risk I's EWMA of closed daily
closes (no look-ahead), cached per asset and day; the active parameter file comes from settings."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from margin import span_inputs
from risk import metrics
from tests.api.factories import write_trade

pytestmark = pytest.mark.django_db
AS_OF = dt.date(2026, 6, 30)


@pytest.fixture(autouse=True)
def _fresh_cache():
    span_inputs.vol_cache_clear()
    yield
    span_inputs.vol_cache_clear()


def _day(offset: int) -> dt.datetime:
    d = AS_OF - dt.timedelta(days=offset)
    return dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC)


def test_volatility_is_the_ewma_of_closed_daily_returns_and_ignores_later_days(market, django_assert_num_queries):
    for i, price in enumerate(["100", "110", "99", "99", "108.9"]):
        write_trade(market, price=price, qty="0.01", at=_day(4 - i))
    write_trade(market, price="1", qty="1", at=_day(-1))  # tomorrow's crash is not known on AS_OF

    vols = span_inputs.asset_vols(["BTC", "ETH"], as_of=AS_OF)

    expected = metrics.ewma_volatility([0.1, -0.1, 0.0, 0.1], 0.94)
    assert set(vols) == {"BTC"}  # ETH has no market: the file's missing_vol_range applies
    assert float(vols["BTC"]) == pytest.approx(expected, rel=1e-12)
    with django_assert_num_queries(0):  # cached for the day
        assert span_inputs.asset_vols(["BTC", "ETH"], as_of=AS_OF) == vols


def test_active_params_follow_the_setting(settings):
    settings.KK99 = {**settings.KK99, "MARGIN_SPAN": {**settings.KK99["MARGIN_SPAN"], "PARAMS_VERSION": "2026-11-a"}}
    assert span_inputs.active_params().version == "2026-11-a"
    settings.KK99 = {**settings.KK99, "MARGIN_SPAN": {**settings.KK99["MARGIN_SPAN"], "PARAMS_VERSION": "missing"}}
    with pytest.raises(Exception, match="no SPAN parameter file 'missing'"):
        span_inputs.active_params()


def test_vol_from_closes_needs_two_closes():
    assert span_inputs.vol_from_closes([Decimal("100")], Decimal("0.94")) is None
