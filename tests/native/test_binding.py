"""The Python enums mirror the C constants, and the wrapper's plumbing works."""
from __future__ import annotations

import pytest

from trading.native import (
    Command,
    CommandBuffer,
    EventBuffer,
    EventKind,
    OrderBook,
    Reason,
    ResultCode,
    Side,
)
from trading.native._orderbook import ffi, lib


def test_result_codes_match_the_c_enum():
    for code in ResultCode:
        c_name = "OB_OK" if code.name == "OK" else "OB_MORE" if code.name == "MORE" else f"OB_ERR_{code.name}"
        assert getattr(lib, c_name) == code.value
        assert ffi.string(lib.ob_strerror(code.value))


def test_struct_sizes_match_the_documented_layout():
    assert ffi.sizeof("ob_event") == 72 and ffi.sizeof("ob_command") == 40


def test_command_buffer_round_trips_bytes_and_executes_like_a_list():
    cmds = [Command.limit(1, 1, Side.SELL, 100, 5), Command.market(2, 2, Side.BUY, 3), Command.cancel(1)]
    buf = CommandBuffer.from_commands(cmds)
    same = CommandBuffer.from_bytes(buf.to_bytes())
    a, b = OrderBook(), OrderBook()
    events = a.execute_buffer(same)
    assert isinstance(events, EventBuffer) and len(events) == 4
    assert events.to_list() == b.execute(cmds)
    assert events[-1].kind == EventKind.CANCELLED and events.count(EventKind.TRADE) == 1


def test_event_buffer_grows_to_hold_a_large_batch():
    book = OrderBook()
    out = EventBuffer(capacity=4)
    cmds = [Command.limit(i, 1, Side.SELL, 1000 + i, 1) for i in range(1, 2001)] + [Command.market(0, 2, Side.BUY, 5000)]
    book.execute_buffer(CommandBuffer.from_commands(cmds), out)
    assert len(out) == 2000 + 1 + 2000 + 1
    assert out[-1].reason == Reason.NO_LIQUIDITY


def test_get_order_of_unknown_or_out_of_range_id_is_none():
    book = OrderBook()
    assert book.get_order(5) is None and book.get_order(2**70) is None


def test_depth_of_zero_levels_is_empty():
    assert OrderBook().depth(0) == ([], [])


def test_repr_mentions_best_prices():
    book = OrderBook()
    book.add_limit(1, 1, Side.BUY, 10, 1)
    assert "bid=(10, 1)" in repr(book)


@pytest.mark.parametrize("cls_name", ["OrderBook", "CommandBuffer", "EventBuffer"])
def test_public_names_are_exported(cls_name):
    import trading.native as native

    assert hasattr(native, cls_name)
