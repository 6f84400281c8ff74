"""Parameter grids and walk-forward analysis with out-of-sample reporting.

``grid_search`` runs every combination of a parameter grid on one data set and ranks them
by an objective metric. ``walk_forward`` splits the bars into consecutive folds: for each
fold it picks the best parameters on the in-sample window (anchored: from the first bar;
rolling: the last ``train`` bars only) and reports how *those* parameters did on the
following ``test`` bars, which the choice never saw. The out-of-sample equity is the
chained test windows. Each test window is run with the in-sample history as warm-up, so
indicators are defined from its first bar, but only its own bars are scored.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from quant.backtest import Costs, OrderRules, run_backtest
from quant.bars import Bars
from quant.errors import QuantError, QuantErrorCode
from quant.metrics import Metrics, compute_metrics
from quant.strategies import Sizing, Strategy, strategy_build


@dataclass(frozen=True)
class GridRow:
    params: dict[str, Any]
    metrics: Metrics


@dataclass(frozen=True)
class Fold:
    train: tuple[int, int]
    test: tuple[int, int]
    params: dict[str, Any]
    in_sample: Metrics
    out_of_sample: Metrics


@dataclass(frozen=True)
class WalkForward:
    folds: list[Fold]
    oos_equity: np.ndarray
    oos_metrics: Metrics


def expand_grid(grid: dict[str, list]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _score(metrics: Metrics, objective: str) -> float:
    value = getattr(metrics, objective)
    return -math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else value


def grid_search(bars: Bars, strategy: str, grid: dict[str, list], *, objective: str = "sharpe",
                fixed: dict[str, Any] | None = None, **engine: Any) -> list[GridRow]:
    """Every valid combination (invalid ones, e.g. fast >= slow, are skipped), best first."""
    rows = []
    for params in expand_grid(grid):
        try:
            strat = strategy_build(strategy, {**(fixed or {}), **params})
        except QuantError:
            continue
        rows.append(GridRow(params, run_backtest(bars, strat, **engine).metrics))
    if not rows:
        raise QuantError(QuantErrorCode.BAD_PARAMETER, "no valid parameter combination in the grid", param="grid")
    rows.sort(key=lambda r: _score(r.metrics, objective), reverse=True)
    return rows


def walk_forward(bars: Bars, strategy: str, grid: dict[str, list], *, train: int, test: int, anchored: bool = False,
                 objective: str = "sharpe", fixed: dict[str, Any] | None = None, sizing: Sizing | None = None,
                 costs: Costs | None = None, orders: OrderRules | None = None, initial_cash: float = 10_000.0,
                 ppy: float | None = None) -> WalkForward:
    n = len(bars)
    if train < 2 or test < 2 or train + test > n:
        raise QuantError(QuantErrorCode.NOT_ENOUGH_DATA, "need train + test <= number of bars", param="train")
    engine = dict(sizing=sizing, costs=costs, orders=orders, initial_cash=initial_cash, ppy=ppy, check_lookahead=False)
    folds: list[Fold] = []
    oos_returns: list[np.ndarray] = []
    pnls: list[float] = []
    exposure_bars = 0
    turnover = 0.0
    start = train
    while start + test <= n:
        lo = 0 if anchored else start - train
        rows = grid_search(bars[lo:start], strategy, grid, objective=objective, fixed=fixed, **engine)
        best = rows[0]
        strat = strategy_build(strategy, {**(fixed or {}), **best.params})
        # Out of sample: the strategy sees the in-sample bars as history; trading starts at `start`.
        hist = bars[lo:start + test]
        sig = np.nan_to_num(strat.signals(hist), nan=0.0)
        sig[: start - lo] = 0.0  # no position carried in from the training window

        class _Given(Strategy):
            name, defaults = "given", {}

            def signals(self, b, _s=sig):
                return _s[: len(b)]

        res = run_backtest(hist, _Given(), **engine)
        eq = res.equity[start - lo - 1:]
        r = eq[1:] / eq[:-1] - 1.0
        oos_returns.append(r)
        oos_trades = [t for t in res.trades if t.entry_bar >= start - lo]
        pnls += [t.pnl for t in oos_trades]
        exposure_bars += int(np.count_nonzero(res.units[start - lo:]))
        turnover += res.metrics.turnover
        folds.append(Fold((lo, start), (start, start + test), best.params, best.metrics,
                          compute_metrics(equity=eq, trade_pnls=[t.pnl for t in oos_trades],
                                          exposure=float(np.mean(res.units[start - lo:] != 0)),
                                          turnover=res.metrics.turnover, periods_per_year=ppy or 365.0)))
        start += test
    r = np.concatenate(oos_returns)
    oos_equity = initial_cash * np.concatenate([[1.0], np.cumprod(1.0 + r)])
    oos = compute_metrics(equity=oos_equity, trade_pnls=pnls, exposure=exposure_bars / max(1, len(r)),
                          turnover=turnover, periods_per_year=ppy or 365.0)
    return WalkForward(folds, oos_equity, oos)
