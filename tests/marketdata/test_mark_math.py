"""The mark price rule (marketdata.mark.mark_compute), pure: capped, tick-rounded toward the
previous mark, time-weighted, self-trade free (the selection is the reader's; see test_mark.py)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.mark import MarkParams, clamped_time_average, mark_compute

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
TICK = Decimal("0.01")
PARAMS = MarkParams(window_seconds=60, trade_cap=Decimal("0.05"), mid_band=Decimal("0.05"))

prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=2)
offsets = st.integers(min_value=0, max_value=60_000_000)  # microseconds into the window
trades = st.lists(st.tuples(offsets, prices), max_size=30).map(
    lambda xs: [(NOW - dt.timedelta(seconds=60) + dt.timedelta(microseconds=o), p) for o, p in sorted(xs)]
)


@settings(max_examples=300, deadline=None)
@given(previous=st.decimals(min_value=Decimal("1.00"), max_value=Decimal("100000"), places=2), points=trades,
       before=st.none() | prices, mid=st.none() | prices)
def test_one_recomputation_moves_the_mark_at_most_the_cap_and_stays_on_the_tick_grid(previous, points, before, mid):
    new = mark_compute(previous=previous, points=points, before=before, now=NOW, mid=mid, tick=TICK, params=PARAMS)
    assert abs(new - previous) <= previous * PARAMS.trade_cap
    assert new % TICK == 0
    assert new > 0


@settings(max_examples=300, deadline=None)
@given(previous=st.decimals(min_value=Decimal("10.00"), max_value=Decimal("100000"), places=2), points=trades,
       wild=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e9"), places=2), at=offsets)
def test_a_single_wild_trade_shifts_the_mark_at_most_the_clamp_width_times_its_share_of_the_window(previous, points, wild, at):
    without = mark_compute(previous=previous, points=points, before=previous, now=NOW, mid=None, tick=TICK, params=PARAMS)
    when = NOW - dt.timedelta(seconds=60) + dt.timedelta(microseconds=at)
    with_wild = sorted(points + [(when, wild)])
    moved = mark_compute(previous=previous, points=with_wild, before=previous, now=NOW, mid=None, tick=TICK, params=PARAMS)
    share = Decimal(60_000_000 - at) / Decimal(60_000_000)  # the print holds at most until now
    # it displaces prices clamped to [M0(1-c), M0(1+c)] by one in the same range, for at most
    # its share of the window; tick rounding toward the anchor may differ by one tick
    assert abs(moved - without) <= 2 * previous * PARAMS.trade_cap * share + TICK


def test_a_last_trade_spike_barely_moves_a_minute_weighted_mark():
    points = [(NOW - dt.timedelta(seconds=30), Decimal("100.00")), (NOW - dt.timedelta(seconds=1), Decimal("50.00"))]
    new = mark_compute(previous=Decimal("100.00"), points=points, before=Decimal("100.00"), now=NOW, mid=None, tick=TICK, params=PARAMS)
    # the 50 print is clamped to 95 and lasted 1 s of 60: 100 − 5/60 = 99.9166… → 99.92 (toward the anchor)
    assert new == Decimal("99.92")


def test_the_mid_bound_pulls_the_average_toward_the_book():
    points = [(NOW - dt.timedelta(seconds=60), Decimal("104.00"))]
    new = mark_compute(previous=Decimal("100.00"), points=points, before=None, now=NOW, mid=Decimal("98.00"), tick=TICK, params=PARAMS)
    assert new == Decimal("102.90")  # 98 × 1.05 = 102.9 < 104


def test_no_trades_keeps_the_previous_mark_and_the_first_mark_is_the_plain_average():
    assert mark_compute(previous=Decimal("100.00"), points=[], before=None, now=NOW, mid=None, tick=TICK, params=PARAMS) == Decimal("100.00")
    points = [(NOW - dt.timedelta(seconds=60), Decimal("10.00")), (NOW - dt.timedelta(seconds=30), Decimal("20.00"))]
    assert mark_compute(previous=None, points=points, before=None, now=NOW, mid=None, tick=TICK, params=PARAMS) == Decimal("15.00")
    assert mark_compute(previous=None, points=[], before=None, now=NOW, mid=None, tick=TICK, params=PARAMS) is None


def test_the_time_average_counts_the_price_in_force_when_the_window_opens():
    start = NOW - dt.timedelta(seconds=60)
    avg = clamped_time_average([(NOW - dt.timedelta(seconds=15), Decimal("20"))], start=start, now=NOW, before=Decimal("10"),
                               low=Decimal(0), high=Decimal(1000))
    assert avg == Decimal("12.5")  # 10 for 45 s, 20 for 15 s
