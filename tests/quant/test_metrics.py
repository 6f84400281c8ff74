"""quant.metrics against empyrical-reloaded (a test dependency) and against from-formula
implementations written here, to 1e-10."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import metrics as m
from quant.backtest import run_backtest
from quant.strategies import SmaCross

empyrical = pytest.importorskip("empyrical")
PPY = 252.0


def _equity(seed: int, n: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10_000 * np.cumprod(1 + rng.normal(0.0005, 0.012, n))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_return_risk_and_ratio_metrics_match_empyrical(seed):
    eq = _equity(seed)
    r = m.returns_from_equity(eq)
    assert m.total_return(r) == pytest.approx(empyrical.cum_returns_final(r), rel=1e-10)
    assert m.annual_return(r, PPY) == pytest.approx(empyrical.annual_return(r, annualization=PPY), rel=1e-10)
    assert m.annual_volatility(r, PPY) == pytest.approx(empyrical.annual_volatility(r, annualization=PPY), rel=1e-10)
    assert m.sharpe_ratio(r, PPY) == pytest.approx(empyrical.sharpe_ratio(r, annualization=PPY), rel=1e-10)
    assert m.sortino_ratio(r, PPY) == pytest.approx(empyrical.sortino_ratio(r, annualization=PPY), rel=1e-10)
    assert m.downside_risk(r, PPY) == pytest.approx(empyrical.downside_risk(r, annualization=PPY), rel=1e-10)
    assert m.max_drawdown(eq) == pytest.approx(empyrical.max_drawdown(r), rel=1e-10)
    assert m.calmar_ratio(r, eq, PPY) == pytest.approx(empyrical.calmar_ratio(r, annualization=PPY), rel=1e-10)


def _dd_duration_by_loop(eq):
    peak, run, best = -math.inf, 0, 0
    for v in eq:
        if v >= peak:
            peak, run = v, 0
        else:
            run += 1
            best = max(best, run)
    return best


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(min_value=-0.2, max_value=0.2, allow_nan=False), min_size=2, max_size=200))
def test_drawdown_and_duration_match_a_loop_written_from_the_definition(rets):
    eq = 100 * np.cumprod(1 + np.asarray(rets))
    peak, worst = -math.inf, 0.0
    for v in eq:
        peak = max(peak, v)
        worst = min(worst, v / peak - 1)
    assert m.max_drawdown(eq) == pytest.approx(worst, abs=1e-10)
    assert m.max_drawdown_duration(eq) == _dd_duration_by_loop(eq)


def test_trade_statistics_from_formula():
    pnls = [10.0, -5.0, 2.5, -2.5, 0.0, 7.0]
    assert m.win_rate(pnls) == pytest.approx(3 / 6)
    assert m.profit_factor(pnls) == pytest.approx(19.5 / 7.5, rel=1e-12)
    assert m.profit_factor([1.0]) == math.inf
    assert math.isnan(m.win_rate([]))


def test_backtest_metrics_are_those_of_its_own_equity_curve(walk):
    res = run_backtest(walk, SmaCross(fast=10, slow=30), ppy=8766)
    r = np.diff(res.equity) / res.equity[:-1]
    assert res.metrics.sharpe == pytest.approx(empyrical.sharpe_ratio(r, annualization=8766), rel=1e-10)
    assert res.metrics.max_drawdown == pytest.approx(empyrical.max_drawdown(r), rel=1e-10)
    assert res.metrics.trades == len(res.trades)
    assert res.metrics.win_rate == pytest.approx(np.mean([t.pnl > 0 for t in res.trades]))
    assert res.metrics.exposure == pytest.approx(np.mean(res.units != 0))
