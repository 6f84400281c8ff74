"""KK99's native order book: a C price-time-priority matching core driven through cffi.

    from trading.native import OrderBook, Side, TimeInForce, StpMode, EventKind, Event

    book = OrderBook()
    book.add_limit(1, owner=7, side=Side.SELL, price=101, qty=5)
    events = book.add_limit(2, owner=8, side=Side.BUY, price=101, qty=2)  # ACCEPTED, TRADE

Design, event format and snapshot format: docs/orderbook.md. Stop / take-profit
orders live in Python (``trading.native.stops.StopBook``); the pure-Python reference
book used by the differential tests is ``trading.native.reference.ReferenceBook``.
The compiled module ``trading.native._orderbook`` is built by ``pip install -e .``;
without it, importing this package still works but ``OrderBook()`` raises
``NativeExtensionMissing`` (and ``manage.py check`` reports trading.E001).
"""
from .book import CommandBuffer, EventBuffer, OrderBook
from .types import (
    BandMode,
    BandState,
    BadSnapshot,
    BufferTooSmall,
    Busy,
    Command,
    CommandType,
    DuplicateOrderId,
    Event,
    EventKind,
    InvalidArgument,
    InvalidPrice,
    InvalidQuantity,
    NativeExtensionMissing,
    Order,
    OrderBookError,
    OutOfMemory,
    Overflow,
    Reason,
    ResultCode,
    Side,
    StpMode,
    TimeInForce,
    UnknownOrderId,
)

__all__ = [
    "BadSnapshot", "BandMode", "BandState", "BufferTooSmall", "Busy", "Command", "CommandBuffer", "CommandType",
    "DuplicateOrderId", "Event", "EventBuffer", "EventKind", "InvalidArgument", "InvalidPrice",
    "InvalidQuantity", "NativeExtensionMissing", "Order", "OrderBook", "OrderBookError",
    "OutOfMemory", "Overflow", "Reason", "ResultCode", "Side", "StpMode", "TimeInForce",
    "UnknownOrderId",
]
