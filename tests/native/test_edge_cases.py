"""Edge cases real exchanges hit, through the Python API of the C book."""
from __future__ import annotations

import pytest

from trading.native import (
    BadSnapshot,
    BufferTooSmall,
    Command,
    DuplicateOrderId,
    EventKind,
    InvalidArgument,
    InvalidPrice,
    InvalidQuantity,
    OrderBook,
    OrderBookError,
    Overflow,
    Reason,
    Side,
    StpMode,
    TimeInForce,
    UnknownOrderId,
)

BUY, SELL = Side.BUY, Side.SELL


def kinds(events):
    return [(e.kind, e.reason) for e in events]


@pytest.fixture
def book():
    return OrderBook()


def test_fok_that_could_fill_only_partially_expires_and_leaves_book_untouched(book):
    book.add_limit(1, 1, SELL, 100, 3)
    book.add_limit(2, 1, SELL, 102, 3)
    before = book.snapshot()

    events = book.add_limit(3, 2, BUY, 101, 5, tif=TimeInForce.FOK)

    assert kinds(events) == [(EventKind.ACCEPTED, Reason.NONE), (EventKind.EXPIRED, Reason.FOK_UNFILLABLE)]
    assert events[-1].qty == 5
    assert book.snapshot()[16:] == before[16:] or book.depth(5) == ([], [(100, 3, 1), (102, 3, 1)])
    assert book.depth(5) == ([], [(100, 3, 1), (102, 3, 1)])


def test_fok_that_can_fill_completely_trades_across_levels(book):
    book.add_limit(1, 1, SELL, 100, 3)
    book.add_limit(2, 1, SELL, 101, 3)

    events = book.add_limit(3, 2, BUY, 101, 5, tif=TimeInForce.FOK)

    assert [e.qty for e in events if e.kind == EventKind.TRADE] == [3, 2]
    assert events[-1].taker_remaining == 0
    assert book.depth(5) == ([], [(101, 1, 1)])


def test_post_only_that_would_cross_is_rejected_and_not_matched(book):
    book.add_limit(1, 1, SELL, 100, 3)

    events = book.add_limit(2, 2, BUY, 100, 1, post_only=True)

    assert kinds(events) == [(EventKind.REJECTED, Reason.POST_ONLY_WOULD_TAKE)]
    assert book.get_order(2) is None and book.get_order(1).remaining_qty == 3


def test_post_only_below_the_ask_rests(book):
    book.add_limit(1, 1, SELL, 100, 3)
    assert kinds(book.add_limit(2, 2, BUY, 99, 1, post_only=True)) == [(EventKind.ACCEPTED, Reason.NONE)]
    assert book.best_bid() == (99, 1)


def test_post_only_with_ioc_is_an_invalid_argument(book):
    with pytest.raises(InvalidArgument):
        book.add_limit(1, 1, BUY, 99, 1, tif=TimeInForce.IOC, post_only=True)


def test_market_buy_with_budget_smaller_than_one_lot_buys_nothing(book):
    book.add_limit(1, 1, SELL, 100, 3)

    events = book.add_market_quote(2, 2, quote_budget=99)

    assert kinds(events) == [(EventKind.ACCEPTED, Reason.NONE), (EventKind.EXPIRED, Reason.BUDGET_EXHAUSTED)]
    assert events[-1].qty == 99
    assert book.get_order(1).remaining_qty == 3


def test_market_buy_by_budget_never_spends_more_than_the_budget(book):
    book.add_limit(1, 1, SELL, 100, 2)
    book.add_limit(2, 1, SELL, 150, 10)

    events = book.add_market_quote(3, 2, quote_budget=520)

    spent = sum(e.price * e.qty for e in events if e.kind == EventKind.TRADE)
    assert spent == 500 and events[-1].reason == Reason.BUDGET_EXHAUSTED and events[-1].qty == 20


@pytest.mark.parametrize("side", [BUY, SELL])
def test_market_order_on_empty_book_expires_for_no_liquidity(book, side):
    events = book.add_market(1, 1, side, 5)
    assert kinds(events) == [(EventKind.ACCEPTED, Reason.NONE), (EventKind.EXPIRED, Reason.NO_LIQUIDITY)]
    assert events[-1].qty == 5 and len(book) == 0


def test_market_quote_on_empty_book_expires_for_no_liquidity(book):
    events = book.add_market_quote(1, 1, 1000)
    assert events[-1].reason == Reason.NO_LIQUIDITY and events[-1].qty == 1000


def test_ioc_remainder_expires_after_partial_fill(book):
    book.add_limit(1, 1, SELL, 100, 2)
    events = book.add_limit(2, 2, BUY, 100, 5, tif=TimeInForce.IOC)
    assert events[-1].kind == EventKind.EXPIRED and events[-1].reason == Reason.IOC_REMAINDER
    assert events[-1].qty == 3 and len(book) == 0


def _own_and_other(book):
    book.add_limit(1, 7, SELL, 100, 3)  # same owner as the taker
    book.add_limit(2, 8, SELL, 100, 3)


def test_stp_none_lets_an_owner_trade_with_itself(book):
    _own_and_other(book)
    events = book.add_limit(3, 7, BUY, 100, 2, stp=StpMode.NONE)
    assert events[1].kind == EventKind.TRADE and events[1].maker_id == 1


def test_stp_expire_taker_expires_the_incoming_order(book):
    _own_and_other(book)
    events = book.add_limit(3, 7, BUY, 100, 2, stp=StpMode.EXPIRE_TAKER)
    assert kinds(events)[1:] == [(EventKind.EXPIRED, Reason.STP_EXPIRE_TAKER)]
    assert events[1].order_id == 3 and book.get_order(1).remaining_qty == 3 and book.get_order(3) is None


def test_stp_expire_maker_expires_the_resting_order_and_keeps_matching(book):
    _own_and_other(book)
    events = book.add_limit(3, 7, BUY, 100, 2, stp=StpMode.EXPIRE_MAKER)
    assert kinds(events)[1:] == [(EventKind.EXPIRED, Reason.STP_EXPIRE_MAKER), (EventKind.TRADE, Reason.NONE)]
    assert events[1].order_id == 1 and events[1].qty == 3 and events[2].maker_id == 2
    assert book.get_order(1) is None


def test_stp_expire_both_expires_maker_then_taker(book):
    _own_and_other(book)
    events = book.add_limit(3, 7, BUY, 100, 2, stp=StpMode.EXPIRE_BOTH)
    assert [(e.kind, e.order_id, e.reason) for e in events[1:]] == [
        (EventKind.EXPIRED, 1, Reason.STP_EXPIRE_BOTH),
        (EventKind.EXPIRED, 3, Reason.STP_EXPIRE_BOTH),
    ]
    assert book.depth(1) == ([], [(100, 3, 1)])


def test_stp_decrement_reduces_both_by_the_smaller_quantity(book):
    _own_and_other(book)
    events = book.add_limit(3, 7, BUY, 100, 5, stp=StpMode.DECREMENT)
    # maker 1 (3) expires, taker 5 -> 2, then trades 2 with order 2
    assert [(e.kind, e.order_id, e.qty) for e in events[1:]] == [
        (EventKind.EXPIRED, 1, 3),
        (EventKind.REDUCED, 3, 3),
        (EventKind.TRADE, 3, 2),
    ]
    assert events[2].taker_remaining == 2 and events[3].taker_remaining == 0
    assert book.get_order(2).remaining_qty == 1


def test_stp_decrement_on_quote_order_reduces_the_budget(book):
    book.add_limit(1, 7, SELL, 100, 3)
    events = book.add_market_quote(2, 7, 250, stp=StpMode.DECREMENT)
    assert [(e.kind, e.qty, e.taker_remaining) for e in events[1:]] == [
        (EventKind.REDUCED, 2, 1),        # maker: 2 lots removed
        (EventKind.REDUCED, 200, 50),     # taker: 200 quote units removed
        (EventKind.EXPIRED, 50, 0),       # 50 < one lot at 100
    ]
    assert events[-1].reason == Reason.BUDGET_EXHAUSTED


def test_taker_crossing_thousands_of_levels_with_a_tiny_event_buffer_loses_no_event():
    book = OrderBook(event_capacity=4)
    book.execute([Command.limit(i + 1, 1, SELL, 1000 + i, 1) for i in range(3000)])

    events = book.add_limit(10**6, 2, BUY, 10**7, 3500, tif=TimeInForce.IOC)

    trades = [e for e in events if e.kind == EventKind.TRADE]
    assert [e.price for e in trades] == list(range(1000, 4000))
    assert events[-1].reason == Reason.IOC_REMAINDER and events[-1].qty == 500
    assert len(book) == 0


def test_batch_with_tiny_event_buffer_gives_every_event():
    book = OrderBook(event_capacity=4)
    cmds = [Command.limit(i + 1, 1, SELL, 1000 + i, 1) for i in range(500)]
    cmds.append(Command.market(9999, 2, BUY, 600))
    events = book.execute(cmds)
    assert len(events) == 500 + 1 + 500 + 1


def test_event_capacity_below_minimum_is_refused():
    with pytest.raises(BufferTooSmall):
        OrderBook(event_capacity=3)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda b: b.add_limit(9, 1, BUY, 100, 0), InvalidQuantity),
        (lambda b: b.add_limit(9, 1, BUY, 100, -1), InvalidQuantity),
        (lambda b: b.add_limit(9, 1, BUY, 0, 1), InvalidPrice),
        (lambda b: b.add_limit(9, 1, BUY, -100, 1), InvalidPrice),
        (lambda b: b.add_limit(1, 1, BUY, 99, 1), DuplicateOrderId),
        (lambda b: b.add_market(1, 1, SELL, 1), DuplicateOrderId),
        (lambda b: b.add_limit(9, 1, BUY, 2**62, 4), Overflow),
        (lambda b: b.add_limit(9, 1, BUY, 2**63, 1), Overflow),
        (lambda b: b.add_limit(9, 1, 5, 100, 1), InvalidArgument),
        (lambda b: b.add_limit(9, 1, BUY, 100, 1, tif=7), InvalidArgument),
        (lambda b: b.add_limit(9, 1, BUY, 100, 1, stp=9), InvalidArgument),
        (lambda b: b.add_market_quote(9, 1, 0), InvalidQuantity),
        (lambda b: b.cancel(42), UnknownOrderId),
        (lambda b: b.reduce(42, 1), UnknownOrderId),
        (lambda b: b.reduce(1, 5), InvalidQuantity),
        (lambda b: b.reduce(1, 7), InvalidQuantity),
        (lambda b: b.reduce(1, 0), InvalidQuantity),
        (lambda b: b.replace(42, 100, 1), UnknownOrderId),
        (lambda b: b.replace(1, 0, 1), InvalidPrice),
        (lambda b: b.replace(1, 100, 0), InvalidQuantity),
        (lambda b: b.replace(1, 2**40, 2**40), Overflow),
    ],
)
def test_hostile_input_raises_typed_error_and_leaves_book_unchanged(call, error):
    book = OrderBook()
    book.add_limit(1, 1, BUY, 100, 5)
    book.add_limit(2, 1, SELL, 110, 5)
    before = book.snapshot()

    with pytest.raises(error) as info:
        call(book)

    assert isinstance(info.value, OrderBookError)
    assert book.snapshot() == before


def test_level_total_that_would_overflow_is_refused():
    book = OrderBook()
    book.add_limit(1, 1, BUY, 1, 2**63 - 2)
    with pytest.raises(Overflow):
        book.add_limit(2, 1, BUY, 1, 2)


def test_batch_reports_refusals_as_rejected_events_and_continues(book):
    events = book.execute([
        Command.limit(1, 1, SELL, 100, 5),
        Command.limit(1, 1, SELL, 100, 5),
        Command.reduce(1, 9),
        Command.market(2, 2, BUY, 2),
    ])
    assert [(e.kind, e.reason) for e in events] == [
        (EventKind.ACCEPTED, Reason.NONE),
        (EventKind.REJECTED, Reason.DUPLICATE_ORDER_ID),
        (EventKind.REJECTED, Reason.INVALID_QUANTITY),
        (EventKind.ACCEPTED, Reason.NONE),
        (EventKind.TRADE, Reason.NONE),
    ]


def test_reduce_keeps_time_priority_but_replace_loses_it(book):
    book.add_limit(1, 1, SELL, 100, 5)
    book.add_limit(2, 1, SELL, 100, 5)
    book.reduce(1, 4)
    assert book.add_market(3, 2, BUY, 1)[1].maker_id == 1
    book.replace(1, 100, 9)
    assert book.add_market(4, 2, BUY, 1)[1].maker_id == 2


def test_replace_to_a_crossing_price_trades_immediately(book):
    book.add_limit(1, 1, SELL, 105, 5)
    book.add_limit(2, 2, BUY, 100, 2)
    events = book.replace(1, 100, 5)
    assert [(e.kind, e.reason) for e in events] == [
        (EventKind.CANCELLED, Reason.REPLACED),
        (EventKind.ACCEPTED, Reason.NONE),
        (EventKind.TRADE, Reason.NONE),
    ]
    assert book.best_ask() == (100, 3)


def test_post_only_replace_that_would_cross_keeps_the_old_order(book):
    book.add_limit(1, 1, SELL, 105, 5)
    book.add_limit(2, 2, BUY, 100, 2)
    events = book.replace(1, 100, 5, post_only=True)
    assert kinds(events) == [(EventKind.REJECTED, Reason.POST_ONLY_WOULD_TAKE)]
    assert book.get_order(1).price == 105


def test_snapshot_restore_round_trips_bytes_and_priority():
    book = OrderBook()
    for i in range(50):
        book.add_limit(i + 1, i % 4, SELL if i % 2 else BUY, 120 + i % 5 if i % 2 else 110 - i % 5, 1 + i % 3)
    data = book.snapshot()
    restored = OrderBook.restore(data)
    assert restored.snapshot() == data and restored.sequence == book.sequence
    assert restored.add_market(999, 9, BUY, 30) == book.add_market(999, 9, BUY, 30)


@pytest.mark.parametrize("mangle", [
    lambda d: d[:-1],
    lambda d: d[:20],
    lambda d: b"XXXX" + d[4:],
    lambda d: d[:50] + bytes([d[50] ^ 1]) + d[51:],
    lambda d: b"",
])
def test_corrupt_snapshot_is_refused(mangle):
    book = OrderBook()
    book.add_limit(1, 1, BUY, 100, 5)
    book.add_limit(2, 1, SELL, 101, 5)
    with pytest.raises(BadSnapshot):
        OrderBook.restore(mangle(book.snapshot()))


def test_crossed_snapshot_is_refused():
    from trading.native.reference import ReferenceBook

    ref = ReferenceBook()
    ref.add_limit(1, 1, BUY, 100, 5)
    ref._rest(type(ref.orders[1])(2, 1, SELL, 99, 5))  # impossible state, built by hand
    with pytest.raises(BadSnapshot):
        OrderBook.restore(ref.snapshot())


def test_depth_aggregates_levels_best_first(book):
    book.add_limit(1, 1, BUY, 100, 5)
    book.add_limit(2, 2, BUY, 100, 7)
    book.add_limit(3, 1, BUY, 101, 1)
    book.add_limit(4, 1, SELL, 103, 2)
    assert book.depth(10) == ([(101, 1, 1), (100, 12, 2)], [(103, 2, 1)])
    assert book.depth(1) == ([(101, 1, 1)], [(103, 2, 1)])
    assert book.best_bid() == (101, 1) and book.best_ask() == (103, 2)
    assert len(book) == 4 and book.level_count(BUY) == 2


def test_a_million_resting_orders_fit_and_cancel():
    book = OrderBook(expected_orders=1_000_000)
    n = 1_000_000
    cmds = [Command.limit(i, i % 1000, BUY if i % 2 else SELL, 50_000 - i % 500 if i % 2 else 50_001 + i % 500, 1)
            for i in range(n)]
    from trading.native import CommandBuffer

    events = book.execute_buffer(CommandBuffer.from_commands(cmds))
    assert len(events) == n and len(book) == n
    book.execute_buffer(CommandBuffer.from_commands([Command.cancel(i) for i in range(0, n, 2)]))
    assert len(book) == n // 2 and book.best_ask() is None
