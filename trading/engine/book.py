"""The engine's thin adapter over ``trading.native`` (the C book and the Python stop book).

Everything the engine needs from the native package goes through here, so the engine reads
in exchange terms (Order rows, Decimals) and the binding's details stay in one file."""
from __future__ import annotations

from decimal import Decimal

from trading.models import Order

# The compiled C book is required (system check trading.E001 reports a missing build; without
# it ``OrderBook()`` raises NativeExtensionMissing). There is deliberately no fallback to the
# pure-Python reference book: it is the oracle of the differential tests, not an engine.
from trading.native import CommandType, EventKind, OrderBook, Side, StpMode, TimeInForce
# The volatility band of the C book (OrderBook.set_band) and its refusal reason, for the engine.
from trading.native import BandMode as BandMode, Reason as Reason
# Stop / take-profit orders wait in the native package's StopBook (add / cancel /
# triggered(last_price) in trigger order); the engine keeps no stop book of its own.
from trading.native.stops import StopBook, StopKind

# Reason codes of the C book (orderbook.h, OB_REASON_*), as lower-case names.
_REASONS = {
    0: "none",
    1: "user_cancel",
    2: "user_reduce",
    3: "replaced",
    4: "ioc_remainder",
    5: "fok_unfillable",
    6: "post_only_would_take",
    7: "no_liquidity",
    8: "budget_exhausted",
    9: "stp_expire_taker",
    10: "stp_expire_maker",
    11: "stp_expire_both",
    12: "stp_decrement",
    13: "outside_band",
}


def reason_name(reason) -> str:
    name = getattr(reason, "name", None)
    if name:
        return str(name).lower()
    code = int(reason)
    if code >= 100:
        return f"book_error_{code - 100}"
    return _REASONS.get(code, f"reason_{code}")


def new_book() -> OrderBook:
    return OrderBook()


def new_stop_book() -> StopBook:
    return StopBook()


def side(value: str):
    return Side.BUY if value == Order.Side.BUY else Side.SELL


def tif(value: str):
    return getattr(TimeInForce, value)


def stp(value: str):
    return getattr(StpMode, value or "NONE")


def depth(book: OrderBook, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Top ``levels`` per side as (price_ticks, qty_lots), best first."""
    bids, asks = book.depth(levels)
    return [(lv[0], lv[1]) for lv in bids], [(lv[0], lv[1]) for lv in asks]


# --- stops ----------------------------------------------------------------------------
# A stop triggers "upward" (when the last price rises to >= stop) for STOP_LOSS buys and
# TAKE_PROFIT sells, "downward" (last <= stop) for STOP_LOSS sells and TAKE_PROFIT buys.


def stop_triggers_upward(o: Order) -> bool:
    stop_loss = o.type in (Order.Type.STOP_LOSS, Order.Type.STOP_LOSS_LIMIT)
    return stop_loss == (o.side == Order.Side.BUY)


def stop_would_trigger(o: Order, last_price: Decimal) -> bool:
    if stop_triggers_upward(o):
        return last_price >= o.stop_price
    return last_price <= o.stop_price


def stop_add(stops: StopBook, o: Order, units) -> None:
    kind = StopKind.STOP_LOSS if o.type in (Order.Type.STOP_LOSS, Order.Type.STOP_LOSS_LIMIT) else StopKind.TAKE_PROFIT
    stops.add(o.pk, side(o.side), units.ticks(o.stop_price), kind)


def stop_cancel(stops: StopBook, order_id: int) -> None:
    stops.cancel(order_id)


def stops_triggered(stops: StopBook, last_price: Decimal, units) -> list[int]:
    """Order ids whose stop the last price has crossed, removed from the stop book, in
    trigger order (farthest stop from the last price first, then first added)."""
    return list(stops.triggered(units.ticks(last_price)))


# --- commands (tuples in the C struct's field order, see trading.native.types.Command) -------
# (type, side, tif, post_only, stp, order_id, owner, price, qty)

# The first event of every new-order command: its ACCEPTED, or its REJECTED.
START_KINDS = (EventKind.ACCEPTED, EventKind.REJECTED)


def limit_command(order_id: int, owner: int, side_, price: int, qty: int, tif_, post_only: bool, stp_) -> tuple:
    return (CommandType.LIMIT, side_, tif_, post_only, stp_, order_id, owner, price, qty)


def market_command(order_id: int, owner: int, side_, qty: int, stp_) -> tuple:
    return (CommandType.MARKET, side_, 0, False, stp_, order_id, owner, 0, qty)


def market_quote_command(order_id: int, owner: int, budget: int, stp_) -> tuple:
    return (CommandType.MARKET_QUOTE, Side.BUY, 0, False, stp_, order_id, owner, 0, budget)


def submit_one(book: OrderBook, cmd: tuple):
    """One command through the single-call API (book errors raise, as they always did)."""
    kind, side_, tif_, post_only, stp_, order_id, owner, price, qty = cmd
    if kind == CommandType.LIMIT:
        return book.add_limit(order_id, owner, side_, price, qty, tif_, post_only, stp_)
    if kind == CommandType.MARKET_QUOTE:
        return book.add_market_quote(order_id, owner, qty, stp_)
    return book.add_market(order_id, owner, side_, qty, stp_)


def execute(book: OrderBook, commands: list[tuple]):
    """Many commands in ONE call into C (``ob_execute_batch``); all their events, in order. A
    command the book refuses yields a REJECTED event (reason ``book_error_<code>``) instead
    of raising, and the others go on."""
    return book.execute(commands)
