"""Shared vocabulary of the native order book and its pure-Python reference.

The integer values of every enum equal the C constants in ``orderbook.h`` (a test
checks this against the compiled module), so events and commands cross the cffi
boundary as plain integers. Nothing here needs the compiled extension.
"""
from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class Side(IntEnum):
    BUY = 0
    SELL = 1


class TimeInForce(IntEnum):
    GTC = 0  # rests until cancelled
    IOC = 1  # the unfilled remainder expires (reason IOC_REMAINDER)
    FOK = 2  # filled completely at once, or expires untouched (reason FOK_UNFILLABLE)


class StpMode(IntEnum):
    """Self-trade prevention, decided by the taker's mode (Binance semantics)."""

    NONE = 0
    EXPIRE_TAKER = 1
    EXPIRE_MAKER = 2
    EXPIRE_BOTH = 3
    DECREMENT = 4


class CommandType(IntEnum):
    LIMIT = 0
    MARKET = 1
    MARKET_QUOTE = 2
    CANCEL = 3
    REDUCE = 4
    REPLACE = 5


class EventKind(IntEnum):
    ACCEPTED = 0
    TRADE = 1
    CANCELLED = 2
    EXPIRED = 3
    REJECTED = 4
    REDUCED = 5


class BandMode(IntEnum):
    """What a band refusal does to the rest of a batch (``ob_band.mode``)."""

    HALT = 0  # the batch stops after the refused command (the market halts)
    SKIP = 1  # the refused command is skipped; the batch goes on


class ResultCode(IntEnum):
    """``ob_result`` of the C library."""

    OK = 0
    MORE = 1
    INVALID_QUANTITY = 2
    INVALID_PRICE = 3
    DUPLICATE_ID = 4
    UNKNOWN_ID = 5
    OVERFLOW = 6
    BUFFER_TOO_SMALL = 7
    INVALID_ARGUMENT = 8
    NO_MEMORY = 9
    BUSY = 10
    BAD_SNAPSHOT = 11


REJECT_BASE = 100


class Reason(IntEnum):
    NONE = 0
    USER_CANCEL = 1
    USER_REDUCE = 2
    REPLACED = 3
    IOC_REMAINDER = 4
    FOK_UNFILLABLE = 5
    POST_ONLY_WOULD_TAKE = 6
    NO_LIQUIDITY = 7
    BUDGET_EXHAUSTED = 8
    STP_EXPIRE_TAKER = 9
    STP_EXPIRE_MAKER = 10
    STP_EXPIRE_BOTH = 11
    STP_DECREMENT = 12
    OUTSIDE_BAND = 13  # REJECTED by the volatility band; price = the first print outside it
    # Reasons of REJECTED events from the batch API: REJECT_BASE + ResultCode.
    INVALID_QUANTITY = REJECT_BASE + ResultCode.INVALID_QUANTITY
    INVALID_PRICE = REJECT_BASE + ResultCode.INVALID_PRICE
    DUPLICATE_ORDER_ID = REJECT_BASE + ResultCode.DUPLICATE_ID
    UNKNOWN_ORDER_ID = REJECT_BASE + ResultCode.UNKNOWN_ID
    OVERFLOW = REJECT_BASE + ResultCode.OVERFLOW
    INVALID_ARGUMENT = REJECT_BASE + ResultCode.INVALID_ARGUMENT
    NO_MEMORY = REJECT_BASE + ResultCode.NO_MEMORY


class Event(NamedTuple):
    """One event record. See docs/orderbook.md ("Events") for what each kind carries.

    ``order_id`` is the subject (the taker for TRADE); ``taker_owner`` is the owner of
    ``order_id`` for every kind; ``maker_*`` are set for TRADE only. For a MARKET_QUOTE
    order, ``qty`` of its ACCEPTED / EXPIRED / REDUCED events and ``taker_remaining``
    are quote units (price_ticks * qty_lots)."""

    kind: EventKind
    order_id: int
    side: Side
    price: int
    qty: int
    maker_id: int
    maker_owner: int
    taker_owner: int
    maker_remaining: int
    taker_remaining: int
    reason: Reason


class BandState(NamedTuple):
    """The volatility band's state, prices in ticks (``ob_band`` of orderbook.h, same field
    order). ``last`` <= 0: no trade yet, no band. Percentages are num / den."""

    last: int
    ref_sum: int = 0
    ref_count: int = 0
    high: int = 0
    low: int = 0
    dyn_count: int = 0
    static_num: int = 5
    static_den: int = 1
    dynamic_num: int = 10
    dynamic_den: int = 1
    mode: int = 0  # BandMode

    def printed(self, price: int) -> BandState:
        """The state after a print at ``price`` (it joins both windows)."""
        first = self.dyn_count == 0
        return self._replace(
            last=price, ref_sum=self.ref_sum + price, ref_count=self.ref_count + 1,
            high=price if first else max(self.high, price), low=price if first else min(self.low, price),
            dyn_count=self.dyn_count + 1,
        )


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def band_range(state: BandState | None) -> tuple[int, int] | None:
    """The band in force, (lo, hi) inclusive ticks, or None (no band): the intersection of
    reference × (1 ∓ static %) — the reference is the mean of the reference window, or the
    last price when it is empty — and [low × (1 − dynamic %), high × (1 + dynamic %)] of the
    dynamic window (the last price when empty), exact, rounded inwards to whole ticks. The C
    book computes the same (``ob_band_limits``; a differential test holds them equal)."""
    if state is None or state.last <= 0:
        return None
    rn, rd = (state.ref_sum, state.ref_count) if state.ref_count else (state.last, 1)
    high, low = (state.high, state.low) if state.dyn_count else (state.last, state.last)
    s, x = 100 * state.static_den, 100 * state.dynamic_den
    lo = max(-(-rn * (s - state.static_num) // (rd * s)), -(-low * (x - state.dynamic_num) // x))
    hi = min(rn * (s + state.static_num) // (rd * s), high * (x + state.dynamic_num) // x)
    return min(max(lo, INT64_MIN), INT64_MAX), min(max(hi, INT64_MIN), INT64_MAX)


class Order(NamedTuple):
    order_id: int
    owner: int
    side: Side
    price: int
    remaining_qty: int


class _CommandBase(NamedTuple):
    type: int
    side: int
    tif: int
    post_only: bool
    stp: int
    order_id: int
    owner: int
    price: int
    qty: int


class Command(_CommandBase):
    """One command for ``OrderBook.execute``. Fields are in the C struct's order; build
    them with the constructors below."""

    __slots__ = ()

    @classmethod
    def limit(cls, order_id: int, owner: int, side: int, price: int, qty: int,
              tif: int = TimeInForce.GTC, post_only: bool = False, stp: int = StpMode.NONE) -> Command:
        return cls(CommandType.LIMIT, side, tif, post_only, stp, order_id, owner, price, qty)

    @classmethod
    def market(cls, order_id: int, owner: int, side: int, qty: int, stp: int = StpMode.NONE) -> Command:
        return cls(CommandType.MARKET, side, 0, False, stp, order_id, owner, 0, qty)

    @classmethod
    def market_quote(cls, order_id: int, owner: int, quote_budget: int, stp: int = StpMode.NONE) -> Command:
        return cls(CommandType.MARKET_QUOTE, Side.BUY, 0, False, stp, order_id, owner, 0, quote_budget)

    @classmethod
    def cancel(cls, order_id: int) -> Command:
        return cls(CommandType.CANCEL, 0, 0, False, 0, order_id, 0, 0, 0)

    @classmethod
    def reduce(cls, order_id: int, new_qty: int) -> Command:
        return cls(CommandType.REDUCE, 0, 0, False, 0, order_id, 0, 0, new_qty)

    @classmethod
    def replace(cls, order_id: int, new_price: int, new_qty: int, post_only: bool = False,
                stp: int = StpMode.NONE) -> Command:
        return cls(CommandType.REPLACE, 0, 0, post_only, stp, order_id, 0, new_price, new_qty)


# ---- errors -----------------------------------------------------------------


class OrderBookError(Exception):
    """A command was refused; the book is unchanged. ``code`` is the C result code."""

    code: ResultCode = ResultCode.INVALID_ARGUMENT

    def __init__(self, message: str | None = None, **details: object) -> None:
        super().__init__(message or self.__class__.__doc__)
        self.details = details


class InvalidQuantity(OrderBookError):
    """Quantity or budget must be > 0 (and a reduce strictly below the remaining qty)."""

    code = ResultCode.INVALID_QUANTITY


class InvalidPrice(OrderBookError):
    """Price must be > 0 ticks."""

    code = ResultCode.INVALID_PRICE


class DuplicateOrderId(OrderBookError):
    """An order with this id already rests in the book."""

    code = ResultCode.DUPLICATE_ID


class UnknownOrderId(OrderBookError):
    """No resting order has this id."""

    code = ResultCode.UNKNOWN_ID


class Overflow(OrderBookError):
    """A value, price * qty, or a level's total qty does not fit in int64."""

    code = ResultCode.OVERFLOW


class BufferTooSmall(OrderBookError):
    """The event buffer is smaller than the minimum one command needs."""

    code = ResultCode.BUFFER_TOO_SMALL


class InvalidArgument(OrderBookError):
    """A bad enum value (side, time in force, STP mode, command type), or post-only with IOC/FOK."""

    code = ResultCode.INVALID_ARGUMENT


class OutOfMemory(OrderBookError):
    """The book could not allocate memory; it is unchanged."""

    code = ResultCode.NO_MEMORY


class Busy(OrderBookError):
    """A paused command must be resumed first."""

    code = ResultCode.BUSY


class BadSnapshot(OrderBookError):
    """Snapshot bytes are truncated, corrupt or inconsistent."""

    code = ResultCode.BAD_SNAPSHOT


class NativeExtensionMissing(OrderBookError, ImportError):
    """trading.native._orderbook is not built: run `pip install -e .` in the repository root."""


ERRORS: dict[int, type[OrderBookError]] = {
    cls.code: cls
    for cls in (InvalidQuantity, InvalidPrice, DuplicateOrderId, UnknownOrderId, Overflow,
                BufferTooSmall, InvalidArgument, OutOfMemory, Busy, BadSnapshot)
}


def error_for(code: int, message: str | None = None) -> OrderBookError:
    return ERRORS.get(code, OrderBookError)(message)


# Lookup tables used to turn raw integers into enum members quickly.
KINDS: tuple = tuple(EventKind)
SIDES: tuple = (Side.BUY, Side.SELL) + tuple(range(2, 256))
REASONS: list = [Reason(i) if i in Reason._value2member_map_ else i for i in range(256)]
