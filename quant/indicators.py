"""Technical indicators on numpy arrays — the one home of every indicator formula in KK99.

Every function takes float arrays and returns float64 arrays of the same length, with NaN
where the value is undefined (the warm-up, or "lookback", region). Argument and result order
follow TA-Lib where TA-Lib has the indicator, and so do the values, including the seeding
rules below (tests/quant/test_indicators.py checks every function against the TA-Lib C
library to 1e-10 on random series and on real candles, warm-up included):

* ``sma`` / ``wma``: first value at index ``period - 1``.
* ``ema``: seeded with the SMA of the first ``period`` values (TA-Lib's default, not the
  "first value" seed of some charting packages); first value at ``period - 1``;
  ``k = 2 / (period + 1)``.
* ``rsi``: Wilder's smoothing seeded with the plain mean of the first ``period`` gains and
  losses; first value at index ``period``. A value therefore depends on where the series
  starts only through that seed, which fades geometrically (factor ``(period-1)/period``
  per bar) — the same as TA-Lib with its unstable period set to 0.
* ``macd``: TA-Lib's construction — the fast EMA is seeded on the window ending where the
  slow EMA's first value is, the signal EMA is seeded with the SMA of the first ``signal``
  MACD values, and all three outputs start at ``slow + signal - 2``.
* ``bollinger``: SMA middle band ± ``k`` population standard deviations.
* ``atr``: Wilder's smoothing of the true range seeded with the SMA of the first ``period``
  true ranges (indices 1..period); first value at index ``period``.
* ``stoch``: slow stochastic (fast %K over ``fastk_period``, SMA-smoothed twice); both
  outputs start at ``fastk_period + slowk_period + slowd_period - 3``.
* ``obv``: starts at ``volume[0]``.
* ``vwap`` (not in TA-Lib): volume-weighted typical price ``(h + l + c) / 3``, cumulative
  from the first bar or over a rolling ``period``.

Recursive indicators (EMA, RSI, ATR) run a plain Python loop over floats (about 0.2 s per
million bars); the others are vectorised. Statistics only: nothing here moves money.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NAN = np.nan


def _arr(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _check_period(period: int, minimum: int = 1) -> int:
    period = int(period)
    if period < minimum:
        raise ValueError(f"period must be >= {minimum}")
    return period


def _window_sum(x: np.ndarray, period: int) -> np.ndarray:
    """Sum of each full window, aligned at its last element (NaN before)."""
    out = np.full(x.shape, NAN)
    if len(x) >= period:
        out[period - 1:] = sliding_window_view(x, period).sum(axis=1)
    return out


def sma(close, period: int = 30) -> np.ndarray:
    """Simple moving average."""
    x = _arr(close)
    period = _check_period(period)
    return _window_sum(x, period) / period


def wma(close, period: int = 30) -> np.ndarray:
    """Linearly weighted moving average (weights 1..period, newest heaviest)."""
    x = _arr(close)
    period = _check_period(period)
    out = np.full(x.shape, NAN)
    if len(x) >= period:
        weights = np.arange(1, period + 1, dtype=np.float64)
        out[period - 1:] = sliding_window_view(x, period) @ weights / (period * (period + 1) / 2)
    return out


def _ema_from(x: np.ndarray, period: int, seed_end: int, out: np.ndarray) -> None:
    """EMA of ``x`` written into ``out`` from index ``seed_end`` on, seeded with the SMA of
    ``x[seed_end - period + 1 : seed_end + 1]``."""
    k = 2.0 / (period + 1)
    prev = float(np.sum(x[seed_end - period + 1: seed_end + 1])) / period
    out[seed_end] = prev
    values = x[seed_end + 1:].tolist()
    res = [0.0] * len(values)
    for i, v in enumerate(values):
        prev = (v - prev) * k + prev
        res[i] = prev
    out[seed_end + 1:] = res


def ema(close, period: int = 30) -> np.ndarray:
    """Exponential moving average, SMA-seeded (see the module docstring)."""
    x = _arr(close)
    period = _check_period(period)
    out = np.full(x.shape, NAN)
    if len(x) >= period:
        _ema_from(x, period, period - 1, out)
    return out


def rsi(close, period: int = 14) -> np.ndarray:
    """Wilder's relative strength index, 0..100 (0 when price does not move at all)."""
    x = _arr(close)
    period = _check_period(period, 2)
    out = np.full(x.shape, NAN)
    if len(x) <= period:
        return out
    diff = np.diff(x)
    gains = np.where(diff > 0, diff, 0.0)
    losses = np.where(diff < 0, -diff, 0.0)
    avg_gain = float(np.sum(gains[:period])) / period
    avg_loss = float(np.sum(losses[:period])) / period
    res = [0.0] * (len(x) - period)
    total = avg_gain + avg_loss
    res[0] = 100.0 * (avg_gain / total) if total != 0 else 0.0
    n1 = period - 1
    for j, (g, lo) in enumerate(zip(gains[period:].tolist(), losses[period:].tolist()), start=1):
        avg_gain = (avg_gain * n1 + g) / period
        avg_loss = (avg_loss * n1 + lo) / period
        total = avg_gain + avg_loss
        res[j] = 100.0 * (avg_gain / total) if total != 0 else 0.0
    out[period:] = res
    return out


def macd(close, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal line and histogram (TA-Lib's seeding; see the module docstring)."""
    x = _arr(close)
    fast, slow, signal = _check_period(fast, 2), _check_period(slow, 2), _check_period(signal)
    if slow < fast:
        fast, slow = slow, fast
    n = len(x)
    line = np.full(x.shape, NAN)
    sig = np.full(x.shape, NAN)
    start = slow - 1 + signal - 1
    if n <= start:
        return line, sig.copy(), sig
    fast_ema = np.full(x.shape, NAN)
    slow_ema = np.full(x.shape, NAN)
    _ema_from(x, fast, slow - 1, fast_ema)
    _ema_from(x, slow, slow - 1, slow_ema)
    raw = fast_ema - slow_ema
    _ema_from(raw, signal, start, sig)
    line[start:] = raw[start:]
    return line, sig, line - sig


def _rolling_std(x: np.ndarray, period: int, mean: np.ndarray) -> np.ndarray:
    mean_sq = _window_sum(x * x, period) / period
    var = mean_sq - mean * mean
    return np.sqrt(np.where(var > 0.0, var, 0.0))


def bollinger(close, period: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger Bands ``(upper, middle, lower)``: SMA ± k population standard deviations."""
    x = _arr(close)
    period = _check_period(period)
    middle = sma(x, period)
    if period == 1:
        return middle.copy(), middle, middle.copy()
    dev = float(k) * _rolling_std(x, period, middle)
    return middle + dev, middle, middle - dev


def true_range(high, low, close) -> np.ndarray:
    """max(high - low, |high - prev close|, |low - prev close|); NaN at index 0."""
    h, lo, c = _arr(high), _arr(low), _arr(close)
    out = np.full(h.shape, NAN)
    if len(h) > 1:
        prev = c[:-1]
        out[1:] = np.maximum(h[1:] - lo[1:], np.maximum(np.abs(h[1:] - prev), np.abs(lo[1:] - prev)))
    return out


def atr(high, low, close, period: int = 14) -> np.ndarray:
    """Average true range (Wilder's smoothing, SMA-seeded)."""
    period = _check_period(period)
    tr = true_range(high, low, close)
    if period == 1:
        return tr
    out = np.full(tr.shape, NAN)
    if len(tr) <= period:
        return out
    prev = float(np.sum(tr[1:period + 1])) / period
    res = [prev]
    n1 = period - 1
    for v in tr[period + 1:].tolist():
        prev = (prev * n1 + v) / period
        res.append(prev)
    out[period:] = res
    return out


def stoch(high, low, close, fastk_period: int = 5, slowk_period: int = 3,
          slowd_period: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Slow stochastic ``(slowk, slowd)`` with SMA smoothing (TA-Lib's default matype 0)."""
    h, lo, c = _arr(high), _arr(low), _arr(close)
    fastk_period, slowk_period, slowd_period = (_check_period(p) for p in (fastk_period, slowk_period, slowd_period))
    n = len(c)
    slowk = np.full(c.shape, NAN)
    slowd = np.full(c.shape, NAN)
    start = fastk_period + slowk_period + slowd_period - 3
    if n <= start:
        return slowk, slowd
    hh = np.full(c.shape, NAN)
    ll = np.full(c.shape, NAN)
    hh[fastk_period - 1:] = sliding_window_view(h, fastk_period).max(axis=1)
    ll[fastk_period - 1:] = sliding_window_view(lo, fastk_period).min(axis=1)
    rng = hh - ll
    with np.errstate(invalid="ignore", divide="ignore"):
        fastk = np.where(rng != 0, (c - ll) / (rng / 100.0), 0.0)
    fastk[: fastk_period - 1] = NAN
    k_full = np.full(c.shape, NAN)
    k_full[fastk_period - 1:] = sma(fastk[fastk_period - 1:], slowk_period)
    d_full = np.full(c.shape, NAN)
    k_start = fastk_period + slowk_period - 2
    d_full[k_start:] = sma(k_full[k_start:], slowd_period)
    slowk[start:] = k_full[start:]
    slowd[start:] = d_full[start:]
    return slowk, slowd


def obv(close, volume) -> np.ndarray:
    """On-balance volume, starting at ``volume[0]``."""
    c, v = _arr(close), _arr(volume)
    if not len(c):
        return c.copy()
    sign = np.zeros(c.shape)
    sign[1:] = np.sign(np.diff(c))
    signed = sign * v
    signed[0] = v[0]
    return np.cumsum(signed)


def vwap(high, low, close, volume, period: int | None = None) -> np.ndarray:
    """Volume-weighted average of the typical price, cumulative or over a rolling window.
    NaN where the (window's) volume is zero."""
    h, lo, c, v = _arr(high), _arr(low), _arr(close), _arr(volume)
    tp = (h + lo + c) / 3.0
    if period is None:
        pv, vol = np.cumsum(tp * v), np.cumsum(v)
    else:
        period = _check_period(period)
        pv, vol = _window_sum(tp * v, period), _window_sum(v, period)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(vol > 0, pv / np.where(vol > 0, vol, 1.0), NAN)


__all__ = ["sma", "ema", "wma", "rsi", "macd", "bollinger", "atr", "true_range", "stoch", "obv", "vwap"]
