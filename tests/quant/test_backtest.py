"""The vectorised backtester's rules: next-open execution, fees, stop-through-gap fills at
the open, limit fills, sizing, voting and the look-ahead guard."""
from __future__ import annotations

import numpy as np
import pytest

from quant.backtest import Costs, OrderRules, run_backtest
from quant.bars import Bars
from quant.errors import QuantError, QuantErrorCode
from quant.lookahead import check_no_lookahead, future_invariance
from quant.strategies import (
    STRATEGIES,
    RsiReversion,
    Sizing,
    SmaCross,
    Strategy,
    Vote,
    hold_states,
    strategy_build,
)


class Fixed(Strategy):
    """Signals given in advance (a test double that does not peek: signal[t] is fixed data)."""

    name = "fixed"
    defaults = {}

    def __init__(self, sig):
        super().__init__()
        self.sig = np.asarray(sig, dtype=float)

    def signals(self, bars):
        return self.sig[: len(bars)]


class Peeking(Strategy):
    """Buys when tomorrow's close is higher — the classic look-ahead bug."""

    name = "peek"
    defaults = {}

    def signals(self, bars):
        nxt = np.append(bars.close[1:], bars.close[-1])
        return (nxt > bars.close).astype(float)


def bars(rows):
    o, h, lo, c = (np.asarray(col, dtype=float) for col in zip(*rows))
    return Bars.from_arrays(open=o, high=h, low=lo, close=c)


FLAT = [(100, 101, 99, 100)] * 3


def test_a_signal_is_executed_at_the_next_bars_open_with_fees():
    b = bars(FLAT + [(110, 112, 108, 111), (120, 121, 119, 120)])
    res = run_backtest(b, Fixed([0, 0, 1, 1, 1]), costs=Costs(fee=0.001), initial_cash=1000, check_lookahead=False)
    (bar, qty, price), = res.fills
    assert (bar, price) == (3, 110.0)  # decided at bar 2's close, filled at bar 3's open
    assert qty == pytest.approx(1000 / (110 * 1.001))
    assert res.equity[2] == 1000
    assert res.equity[-1] == pytest.approx(1000 - qty * 110 * 0.001 + qty * (120 - 110))


def test_a_stop_through_a_gap_fills_at_the_open_not_at_the_stop():
    # Long from bar 3 at 100, stop 5 % below (95). Bar 4 opens at 90: the stop fills at 90.
    b = bars(FLAT + [(100, 101, 99, 100), (90, 91, 85, 88), (88, 89, 87, 88)])
    res = run_backtest(b, Fixed([0, 0, 1, 1, 1, 1]), costs=Costs(fee=0), orders=OrderRules(stop_loss=0.05),
                       initial_cash=1000, check_lookahead=False)
    trade, = res.trades
    assert (trade.exit_reason, trade.exit_bar, trade.exit_price) == ("stop", 4, 90.0)
    assert res.equity[-1] == pytest.approx(900.0)


def test_a_stop_without_a_gap_fills_at_the_stop():
    b = bars(FLAT + [(100, 101, 99, 100), (99, 99.5, 94, 96), (96, 97, 95, 96)])
    res = run_backtest(b, Fixed([0, 0, 1, 1, 1, 1]), costs=Costs(fee=0), orders=OrderRules(stop_loss=0.05),
                       initial_cash=1000, check_lookahead=False)
    trade, = res.trades
    assert (trade.exit_reason, trade.exit_bar, trade.exit_price) == ("stop", 4, 95.0)


def test_a_short_stop_through_an_up_gap_fills_at_the_open():
    b = bars(FLAT + [(100, 101, 99, 100), (112, 115, 111, 114)])
    res = run_backtest(b, Fixed([0, 0, -1, -1, -1]), costs=Costs(fee=0), orders=OrderRules(stop_loss=0.05),
                       initial_cash=1000, check_lookahead=False)
    assert res.trades[0].exit_price == 112.0


def test_take_profit_fills_at_its_limit_or_better_on_a_gap():
    b = bars(FLAT + [(100, 101, 99, 100), (101, 111, 100, 110), (110, 111, 109, 110)])
    res = run_backtest(b, Fixed([0, 0, 1, 1, 1, 1]), costs=Costs(fee=0), orders=OrderRules(take_profit=0.05),
                       initial_cash=1000, check_lookahead=False)
    assert (res.trades[0].exit_reason, res.trades[0].exit_price) == ("take_profit", 105.0)
    gap = bars(FLAT + [(100, 101, 99, 100), (108, 111, 107, 110)])
    res = run_backtest(gap, Fixed([0, 0, 1, 1, 1]), costs=Costs(fee=0), orders=OrderRules(take_profit=0.05),
                       initial_cash=1000, check_lookahead=False)
    assert res.trades[0].exit_price == 108.0


def test_a_limit_entry_fills_only_when_the_price_reaches_it():
    # Decided at bar 2 (close 100), buy limit 2 % below = 98; bar 3 low 99 (no), bar 4 low 97 (fill at 98).
    b = bars(FLAT + [(100, 101, 99, 100), (99, 100, 97, 99), (99, 100, 98, 99)])
    res = run_backtest(b, Fixed([0, 0, 1, 1, 1, 1]), costs=Costs(fee=0),
                       orders=OrderRules(entry="limit", limit_offset=0.02, limit_valid_bars=3),
                       initial_cash=1000, check_lookahead=False)
    assert res.fills[0][0] == 4 and res.fills[0][2] == 98.0
    expired = run_backtest(b, Fixed([0, 0, 1, 1, 1, 1]), costs=Costs(fee=0),
                           orders=OrderRules(entry="limit", limit_offset=0.02, limit_valid_bars=1),
                           initial_cash=1000, check_lookahead=False)
    assert expired.fills == [] and expired.equity[-1] == 1000


def test_slippage_moves_market_fills_against_us():
    c = Costs(fee=0, slippage_bps=10, half_spread=0.5)
    assert c.market_price(100.0, +1) == pytest.approx(100.6)
    assert c.market_price(100.0, -1) == pytest.approx(99.4)


def test_whole_unit_sizing_buys_an_integer_quantity_and_fractional_does_not():
    b = bars(FLAT + [(33, 34, 32, 33), (33, 34, 32, 33)])
    whole = run_backtest(b, Fixed([0, 0, 1, 1, 1]), sizing=Sizing(fractional=False), costs=Costs(fee=0),
                         initial_cash=1000, check_lookahead=False)
    assert whole.fills[0][1] == 30.0
    frac = run_backtest(b, Fixed([0, 0, 1, 1, 1]), sizing=Sizing(fraction=0.5), costs=Costs(fee=0),
                        initial_cash=1000, check_lookahead=False)
    assert frac.fills[0][1] == pytest.approx(500 / 33)


def test_volatility_target_sizing_takes_less_exposure_in_wilder_markets(walk):
    calm = Sizing(mode="vol_target", target_vol=0.1, lookback=20, max_leverage=5, periods_per_year=8766)
    e = calm.exposure(walk)
    assert (e[:20] == 0).all() and (e[20:] > 0).all()
    r = np.diff(np.log(walk.close))
    t = 500
    expected = min(5, 0.1 / (np.std(r[t - 20:t], ddof=1) * np.sqrt(8766)))
    assert e[t] == pytest.approx(expected, rel=1e-12)


def test_a_peeking_strategy_fails_the_framework_check(walk):
    with pytest.raises(QuantError) as exc:
        run_backtest(walk, Peeking())
    assert exc.value.code == QuantErrorCode.LOOK_AHEAD
    assert not future_invariance(Peeking(), walk)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_builtin_strategy_passes_the_look_ahead_check(name, walk):
    strategy = strategy_build(name, {"allow_short": True})
    check_no_lookahead(strategy, walk, cuts=30)
    assert future_invariance(strategy, walk)


def test_delaying_the_data_by_one_bar_delays_every_fill_by_one_bar(walk):
    base = run_backtest(walk, SmaCross(fast=5, slow=15), costs=Costs(fee=0))
    delayed = Bars(walk.time, np.append(walk.open[:1], walk.open[:-1]), np.append(walk.high[:1], walk.high[:-1]),
                   np.append(walk.low[:1], walk.low[:-1]), np.append(walk.close[:1], walk.close[:-1]),
                   walk.volume)
    moved = run_backtest(delayed, SmaCross(fast=5, slow=15), costs=Costs(fee=0))
    # The duplicated first bar only changes the warm-up; after it every fill moves by one bar.
    expected = [(bar + 1, price) for bar, _, price in base.fills if bar > 20]
    assert len(expected) > 50
    assert expected == [(bar, price) for bar, _, price in moved.fills if bar > 21]


def test_voting_modes_combine_member_signals():
    b = bars(FLAT * 2)
    a, c, d = Fixed([1, 1, -1, 0, 1, -1]), Fixed([1, 0, -1, 1, -1, -1]), Fixed([0, -1, -1, 1, 1, 0])
    assert Vote(members=[a, c, d], mode="majority").signals(b).tolist() == [1, 0, -1, 1, 1, -1]
    assert Vote(members=[a, c, d], mode="unanimous").signals(b).tolist() == [0, 0, -1, 0, 0, 0]
    weighted = Vote(members=[a, c, d], mode="weighted", weights=[3, 1, 1], threshold=0.5).signals(b)
    assert weighted.tolist() == [1, 0, -1, 0, 1, -1]


def test_hold_states_keep_the_position_until_the_exit_trigger():
    enter = np.array([0, 1, 0, 0, 0, 0, 1], bool)
    leave = np.array([0, 0, 0, 1, 0, 0, 0], bool)
    assert hold_states(enter, leave).tolist() == [0, 1, 1, 0, 0, 0, 1]


def test_bad_parameters_are_refused_with_a_code():
    with pytest.raises(QuantError) as exc:
        SmaCross(fast=30, slow=10)
    assert exc.value.code == QuantErrorCode.BAD_PARAMETER
    with pytest.raises(QuantError) as exc:
        strategy_build("nope")
    assert exc.value.code == QuantErrorCode.UNKNOWN_STRATEGY
    with pytest.raises(QuantError):
        RsiReversion(lower=80, upper=20)
    with pytest.raises(QuantError):
        SmaCross(speed=3)


def test_a_vote_is_built_from_flat_parameters_and_rebuilt_from_its_own():
    vote = strategy_build("vote", {"members": "sma_cross+macd_trend", "mode": "weighted", "weights": "2+1",
                                   "threshold": "0.4", "sma_cross.fast": "5"})
    assert [m.name for m in vote.members] == ["sma_cross", "macd_trend"] and vote.members[0].params["fast"] == 5
    assert vote.weights == [2.0, 1.0] and vote.threshold == 0.4
    again = strategy_build("vote", vote.params)
    assert again.params == vote.params and repr(again) == repr(vote)


@pytest.mark.parametrize("params", [
    {"members": "sma_cross+nope"}, {"members": "sma_cross+sma_cross"}, {"members": ""}, {"mode": "loudest"},
    {"weights": "1+x+1"}, {"weights": "1+1"}, {"rsi.period": "3"}, {"sma_cross.speed": "1"}, {"macd_trend.fast": "40"},
])
def test_bad_vote_parameters_are_refused(params):
    with pytest.raises(QuantError) as exc:
        strategy_build("vote", params)
    assert exc.value.code == QuantErrorCode.BAD_PARAMETER


def test_the_default_vote_runs_and_passes_the_look_ahead_check(walk):
    res = run_backtest(walk, strategy_build("vote", {}))
    assert res.metrics.trades > 0
