from __future__ import annotations

import numpy as np
import pytest

from quant.backtest import Costs, run_backtest
from quant.errors import QuantError
from quant.strategies import SmaCross
from quant.walkforward import expand_grid, grid_search, walk_forward


def test_grid_skips_invalid_combinations_and_ranks_by_the_objective(walk):
    rows = grid_search(walk, "sma_cross", {"fast": [5, 10, 40], "slow": [20, 30]}, objective="sharpe")
    assert len(rows) == 4  # fast=40 is never shorter than slow
    sharpes = [r.metrics.sharpe for r in rows]
    assert sharpes == sorted(sharpes, reverse=True)
    best = rows[0]
    assert run_backtest(walk, SmaCross(**best.params)).metrics.sharpe == pytest.approx(best.metrics.sharpe)


@pytest.mark.parametrize("anchored", [False, True])
def test_walk_forward_reports_only_bars_the_choice_never_saw(walk, anchored):
    wf = walk_forward(walk, "sma_cross", {"fast": [5, 10], "slow": [20, 40]}, train=1000, test=500, anchored=anchored,
                      costs=Costs(fee=0.0005))
    assert [f.test for f in wf.folds] == [(1000, 1500), (1500, 2000), (2000, 2500), (2500, 3000), (3000, 3500), (3500, 4000)]
    for f in wf.folds:
        assert f.train[1] == f.test[0]  # training ends where testing starts
        assert f.train[0] == (0 if anchored else f.test[0] - 1000)
    assert len(wf.oos_equity) == 3001
    # The chained out-of-sample equity is the product of the folds' own test-window returns.
    growth = np.prod([1 + f.out_of_sample.total_return for f in wf.folds])
    assert wf.oos_equity[-1] / wf.oos_equity[0] == pytest.approx(growth, rel=1e-10)


def test_walk_forward_refuses_windows_longer_than_the_data(walk):
    with pytest.raises(QuantError):
        walk_forward(walk, "sma_cross", {"fast": [5]}, train=4000, test=500)


def test_expand_grid_is_the_cartesian_product():
    assert expand_grid({"b": [1, 2], "a": [3]}) == [{"a": 3, "b": 1}, {"a": 3, "b": 2}]
