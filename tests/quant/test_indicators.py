"""quant.indicators against the TA-Lib C library (the `TA-Lib` wheel, a test dependency):
equal NaN warm-up regions and values within 1e-10 (relative; TA-Lib's running sums differ
from ours by float rounding only) on random series and on real candles."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import indicators as ta
from quant.bars import synthetic_bars

talib = pytest.importorskip("talib")
TOL = dict(rtol=1e-10, atol=1e-10)


def assert_same(ours, theirs):
    ours, theirs = np.atleast_2d(np.asarray(ours)), np.atleast_2d(np.asarray(theirs))
    assert ours.shape == theirs.shape
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg="warm-up (NaN) regions differ")
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], **TOL)


def cases(h, lo, c, v):
    yield "sma", ta.sma(c, 20), talib.SMA(c, 20)
    yield "sma2", ta.sma(c, 2), talib.SMA(c, 2)
    yield "ema", ta.ema(c, 10), talib.EMA(c, 10)
    yield "ema50", ta.ema(c, 50), talib.EMA(c, 50)
    yield "wma", ta.wma(c, 14), talib.WMA(c, 14)
    yield "rsi", ta.rsi(c), talib.RSI(c, 14)
    yield "rsi5", ta.rsi(c, 5), talib.RSI(c, 5)
    yield "macd", ta.macd(c), talib.MACD(c, 12, 26, 9)
    yield "macd_5_35_5", ta.macd(c, 5, 35, 5), talib.MACD(c, 5, 35, 5)
    yield "bollinger", ta.bollinger(c), talib.BBANDS(c, 20, 2.0, 2.0, 0)
    yield "bollinger_k1.5", ta.bollinger(c, 10, 1.5), talib.BBANDS(c, 10, 1.5, 1.5, 0)
    yield "atr", ta.atr(h, lo, c), talib.ATR(h, lo, c, 14)
    yield "atr1", ta.atr(h, lo, c, 1), talib.ATR(h, lo, c, 1)
    yield "true_range", ta.true_range(h, lo, c), talib.TRANGE(h, lo, c)
    yield "stoch", ta.stoch(h, lo, c), talib.STOCH(h, lo, c, 5, 3, 0, 3, 0)
    yield "stoch_14_3_3", ta.stoch(h, lo, c, 14, 3, 3), talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    yield "obv", ta.obv(c, v), talib.OBV(c, v)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_indicator_matches_talib_on_random_series_including_warm_up(seed):
    b = synthetic_bars(2500, seed=seed, start=50 + 40 * seed)
    for name, ours, theirs in cases(b.high, b.low, b.close, b.volume):
        try:
            assert_same(ours, theirs)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


@pytest.mark.parametrize("sample", ["goog", "eurusd"])
def test_every_indicator_matches_talib_on_real_candles(sample, request):
    b = request.getfixturevalue(sample)
    for name, ours, theirs in cases(b.high, b.low, b.close, b.volume):
        try:
            assert_same(ours, theirs)
        except AssertionError as exc:
            raise AssertionError(f"{sample} {name}: {exc}") from None


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(min_value=1.0, max_value=1000.0, allow_nan=False), min_size=1, max_size=80),
    period=st.integers(min_value=2, max_value=30),
)
def test_short_and_flat_series_match_talib(values, period):
    c = np.asarray(values)
    assert_same(ta.sma(c, period), talib.SMA(c, period))
    assert_same(ta.ema(c, period), talib.EMA(c, period))
    assert_same(ta.rsi(c, period), talib.RSI(c, period))
    assert_same(ta.bollinger(c, period), talib.BBANDS(c, period, 2.0, 2.0, 0))


def test_rsi_value_depends_on_the_start_only_through_the_seed():
    """Documented seeding: the same bar's RSI computed from two different starts converges
    (Wilder's seed fades by (n-1)/n per bar)."""
    c = synthetic_bars(1500, seed=5).close
    full, late = ta.rsi(c, 14), ta.rsi(c[500:], 14)
    assert abs(full[514] - late[14]) > 1e-6  # near the later start the seeds still differ
    assert abs(full[-1] - late[-1]) < 1e-10  # far from both starts they agree


def test_vwap_cumulative_and_rolling_from_formula():
    b = synthetic_bars(300, seed=9)
    tp = (b.high + b.low + b.close) / 3
    np.testing.assert_allclose(ta.vwap(b.high, b.low, b.close, b.volume), np.cumsum(tp * b.volume) / np.cumsum(b.volume), rtol=1e-12)
    rolled = ta.vwap(b.high, b.low, b.close, b.volume, period=10)
    assert np.isnan(rolled[:9]).all()
    t = 123
    assert rolled[t] == pytest.approx(np.sum(tp[t - 9:t + 1] * b.volume[t - 9:t + 1]) / np.sum(b.volume[t - 9:t + 1]), rel=1e-12)


def test_a_bad_period_is_refused():
    with pytest.raises(ValueError):
        ta.sma(np.ones(10), 0)
