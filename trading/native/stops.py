"""Stop-loss and take-profit orders waiting for their trigger price (pure Python).

Why here and not in C: a stop order does not rest in the book and never matches
until it triggers; the engine persists it in the database anyway (it must survive a
restart and hold funds), and triggering is rare next to matching. Keeping the
waiting set in Python costs one ``triggered(last_price)`` call per batch and keeps
the C core small. When a stop triggers, the engine submits its market or limit
order to the C book as a normal command.

Trigger rules (``last`` is the last trade price):

=================  ==============  ================
kind               SELL            BUY
=================  ==============  ================
STOP_LOSS          last <= stop    last >= stop
TAKE_PROFIT        last >= stop    last <= stop
=================  ==============  ================

Trigger order: the price path to ``last`` crosses the stop prices farthest from
``last`` first, so triggered orders come out by ``abs(stop - last)`` descending, ties
by insertion sequence (first added first). Deterministic: the same adds/cancels and
prices always give the same order, so replay reproduces it.
"""
from __future__ import annotations

import heapq
from enum import IntEnum
from typing import NamedTuple

from .types import DuplicateOrderId, InvalidArgument, InvalidPrice, Side, UnknownOrderId


class StopKind(IntEnum):
    STOP_LOSS = 0
    TAKE_PROFIT = 1


class StopOrder(NamedTuple):
    order_id: int
    side: Side
    stop_price: int
    kind: StopKind
    seq: int


def _falls(side: int, kind: int) -> bool:
    """True if the order triggers when the price falls to (or below) its stop."""
    return (side == Side.SELL) == (kind == StopKind.STOP_LOSS)


class StopBook:
    """Waiting stop orders. Two heaps: "falling" triggers (last <= stop) keyed by the
    highest stop, "rising" triggers (last >= stop) keyed by the lowest stop; cancelled
    entries are skipped lazily. add/cancel O(log n); triggered O(k log n)."""

    def __init__(self) -> None:
        self._orders: dict[int, StopOrder] = {}
        self._falling: list[tuple[int, int, int]] = []  # (-stop, seq, order_id)
        self._rising: list[tuple[int, int, int]] = []   # (stop, seq, order_id)
        self._seq = 0

    def add(self, order_id: int, side: Side, stop_price: int, kind: StopKind) -> StopOrder:
        if order_id in self._orders:
            raise DuplicateOrderId(f"stop order {order_id} already waits")
        if side not in (Side.BUY, Side.SELL) or kind not in (StopKind.STOP_LOSS, StopKind.TAKE_PROFIT):
            raise InvalidArgument("side or kind is invalid")
        if stop_price <= 0:
            raise InvalidPrice("stop price must be > 0")
        self._seq += 1
        order = StopOrder(order_id, Side(side), stop_price, StopKind(kind), self._seq)
        self._orders[order_id] = order
        if _falls(side, kind):
            heapq.heappush(self._falling, (-stop_price, self._seq, order_id))
        else:
            heapq.heappush(self._rising, (stop_price, self._seq, order_id))
        return order

    def cancel(self, order_id: int) -> StopOrder:
        try:
            order = self._orders.pop(order_id)
        except KeyError:
            raise UnknownOrderId(f"no waiting stop order {order_id}") from None
        if len(self._falling) + len(self._rising) > 2 * len(self._orders) + 64:
            # drop cancelled entries so the heaps stay proportional to live orders
            self._falling = [e for e in self._falling if self._live(e)]
            self._rising = [e for e in self._rising if self._live(e)]
            heapq.heapify(self._falling)
            heapq.heapify(self._rising)
        return order

    def _live(self, entry: tuple[int, int, int]) -> bool:
        order = self._orders.get(entry[2])
        return order is not None and order.seq == entry[1]

    def triggered(self, last_price: int) -> list[int]:
        """Remove and return the ids of every stop order ``last_price`` triggers, in
        trigger order."""
        hits: list[StopOrder] = []
        falling, rising = self._falling, self._rising
        while falling and -falling[0][0] >= last_price:
            entry = heapq.heappop(falling)
            if self._live(entry):
                hits.append(self._orders.pop(entry[2]))
        while rising and rising[0][0] <= last_price:
            entry = heapq.heappop(rising)
            if self._live(entry):
                hits.append(self._orders.pop(entry[2]))
        hits.sort(key=lambda o: (-abs(o.stop_price - last_price), o.seq))
        return [o.order_id for o in hits]

    def get(self, order_id: int) -> StopOrder | None:
        return self._orders.get(order_id)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def __len__(self) -> int:
        return len(self._orders)
