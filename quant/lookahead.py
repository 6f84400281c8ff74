"""The framework's look-ahead guard.

A strategy may make ``signal[t]`` from bars ``0..t`` only. ``check_no_lookahead`` proves it
the direct way: it recomputes the signals on the data cut right after bar t (bars ``0..t``
only) for a handful of cut points and compares ``signal[t]`` with the full run's. A strategy
that reads any later bar (``np.roll(x, -1)``, a centred window, tomorrow's close…) gives a
different value at some cut and raises ``QuantError(LOOK_AHEAD)``. Every engine runs it
before a backtest unless told not to.

``shift_consistency`` is the second check: feeding the strategy the same data delayed by one
bar must delay its signals by exactly one bar (and change results accordingly).
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


def shift_consistency(strategy, bars: Bars) -> bool:
    """True when delaying the data by one bar delays the signals by exactly one bar."""
    n = len(bars)
    base = _signals(strategy, bars)
    delayed = Bars(bars.time[1:], bars.open[:-1], bars.high[:-1], bars.low[:-1], bars.close[:-1], bars.volume[:-1])
    shifted = _signals(strategy, delayed)
    return n > 1 and np.array_equal(base[:-1], shifted)
