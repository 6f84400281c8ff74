"""The framework's look-ahead guard.

A strategy may make ``signal[t]`` from bars ``0..t`` only. ``check_no_lookahead`` proves it
the direct way: it recomputes the signals on the data cut right after bar t (bars ``0..t``
only) for a handful of cut points and compares ``signal[t]`` with the full run's. A strategy
that reads any later bar (``np.roll(x, -1)``, a centred window, tomorrow's close…) gives a
different value at some cut and raises ``QuantError(LOOK_AHEAD)``. Every engine runs it
before a backtest unless told not to.

``future_invariance`` is the second check: scrambling the bars after t must leave the
signals up to t unchanged. (The third, in the tests: delaying the data by one bar delays
every fill by exactly one bar.)
"""
from __future__ import annotations

import numpy as np

from quant.bars import Bars
from quant.errors import QuantError, QuantErrorCode

DEFAULT_CUTS = 12
MAX_PREFIX = 20_000  # cut points are drawn from the first bars: the check stays cheap at 1M bars


def _signals(strategy, bars: Bars) -> np.ndarray:
    return np.nan_to_num(np.asarray(strategy.signals(bars), dtype=np.float64), nan=0.0)


def check_no_lookahead(strategy, bars: Bars, *, cuts: int = DEFAULT_CUTS, seed: int = 0,
                       full: np.ndarray | None = None) -> None:
    n = len(bars)
    if n < 3:
        return
    horizon = min(n - 1, MAX_PREFIX)
    full_signals = _signals(strategy, bars[:horizon + 1]) if full is None else full
    rng = np.random.default_rng(seed)
    points = set(rng.integers(1, horizon, size=cuts).tolist())
    # Signal changes are where a peeking strategy differs most often: test some of them too.
    changes = np.flatnonzero(np.diff(full_signals[:horizon])) + 1
    if len(changes):
        points.update(rng.choice(changes, size=min(cuts, len(changes)), replace=False).tolist())
    points.update(changes[:cuts].tolist())
    points.update((changes[:cuts] - 1).tolist())
    for t in sorted(p for p in points if 0 < p < horizon):
        prefix = _signals(strategy, bars[: t + 1])
        if len(prefix) != t + 1 or prefix[t] != full_signals[t]:
            raise QuantError(
                QuantErrorCode.LOOK_AHEAD,
                f"{strategy!r}: the signal at bar {t} changes when the bars after it are removed — "
                "the strategy reads the future",
                bar=int(t),
            )


def future_invariance(strategy, bars: Bars, *, points: int = 20, seed: int = 1) -> bool:
    """True when scrambling every bar after t (for ``points`` random t) leaves the signals
    up to t unchanged — the second, independent look-ahead check."""
    n = len(bars)
    if n < 3:
        return True
    base = _signals(strategy, bars)
    rng = np.random.default_rng(seed)
    for t in rng.integers(1, n - 1, size=points).tolist():
        noise = np.ones(n)
        noise[t + 1:] = np.exp(rng.normal(0.0, 0.05, n - t - 1))
        o, c = bars.open * noise, bars.close * noise
        h = np.maximum(bars.high * noise, np.maximum(o, c))
        lo = np.minimum(bars.low * noise, np.minimum(o, c))
        scrambled = Bars(bars.time, o, h, lo, c, bars.volume)
        if not np.array_equal(_signals(strategy, scrambled)[: t + 1], base[: t + 1]):
            return False
    return True
