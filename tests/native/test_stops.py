"""StopBook: trigger conditions per kind and side, and a deterministic trigger order."""
from __future__ import annotations

import pytest

from trading.native import DuplicateOrderId, InvalidPrice, Side, UnknownOrderId
from trading.native.stops import StopBook, StopKind

SL, TP = StopKind.STOP_LOSS, StopKind.TAKE_PROFIT


@pytest.mark.parametrize(
    "side, kind, stop, last, fires",
    [
        (Side.SELL, SL, 100, 100, True), (Side.SELL, SL, 100, 101, False), (Side.SELL, SL, 100, 99, True),
        (Side.BUY, SL, 100, 100, True), (Side.BUY, SL, 100, 99, False), (Side.BUY, SL, 100, 101, True),
        (Side.SELL, TP, 100, 101, True), (Side.SELL, TP, 100, 99, False),
        (Side.BUY, TP, 100, 99, True), (Side.BUY, TP, 100, 101, False),
    ],
)
def test_trigger_condition_per_side_and_kind(side, kind, stop, last, fires):
    stops = StopBook()
    stops.add(1, side, stop, kind)
    assert stops.triggered(last) == ([1] if fires else [])
    assert (1 in stops) is not fires


def test_falling_price_triggers_highest_stop_first_ties_by_insertion():
    stops = StopBook()
    stops.add(1, Side.SELL, 95, SL)
    stops.add(2, Side.SELL, 99, SL)
    stops.add(3, Side.BUY, 99, TP)
    stops.add(4, Side.SELL, 90, SL)  # not crossed
    assert stops.triggered(94) == [2, 3, 1]
    assert len(stops) == 1


def test_rising_price_triggers_lowest_stop_first():
    stops = StopBook()
    stops.add(1, Side.BUY, 105, SL)
    stops.add(2, Side.SELL, 101, TP)
    stops.add(3, Side.BUY, 103, SL)
    assert stops.triggered(110) == [2, 3, 1]


def test_cancelled_stop_never_triggers_and_id_can_be_reused():
    stops = StopBook()
    stops.add(1, Side.SELL, 100, SL)
    stops.cancel(1)
    stops.add(1, Side.BUY, 200, SL)
    assert stops.triggered(100) == []
    assert stops.triggered(200) == [1]


def test_refusals_are_typed():
    stops = StopBook()
    stops.add(1, Side.SELL, 100, SL)
    with pytest.raises(DuplicateOrderId):
        stops.add(1, Side.SELL, 100, SL)
    with pytest.raises(InvalidPrice):
        stops.add(2, Side.SELL, 0, SL)
    with pytest.raises(UnknownOrderId):
        stops.cancel(9)


def test_many_cancels_do_not_grow_the_heaps_without_bound():
    stops = StopBook()
    for i in range(10_000):
        stops.add(i, Side.SELL, 100, SL)
        stops.cancel(i)
    assert len(stops._falling) < 200
