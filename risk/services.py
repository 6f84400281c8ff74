"""Pre-trade risk and the kill switch.

:func:`order_check` is the last of ``trading.orders.ORDER_CHECKS``: it sees the parsed
request (``trading.orders.OrderRequest``), the user, the market and the reference price, and
refuses by raising a :class:`risk.errors.RiskError` — one code per control. It never writes
to the database: a refusal leaves no order, no hold and no journal event. Its controls, in
order (cheapest and most absolute first; the two that touch the cache come last, so an order
refused by another control consumes no rate budget):

    kill switch → max quantity → max notional → price collar → open orders (market, account)
    → daily traded notional → duplicate guard → order rate (10 s, 1 day)

The limits in force, the kill switches and the open-order counts come from
:func:`risk.selectors.pretrade_snapshot` in one database round trip.
The kill switch that it enforces is engaged by :mod:`risk.killswitch`."""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from risk import counters, selectors
from risk.errors import RiskError, RiskErrorCode
from risk.models import KillSwitch
from trading.fees import usdt_value_of
from trading.holds import order_notional
from trading.models import Market, Order

if TYPE_CHECKING:  # annotations only: trading.orders imports this module
    from trading.orders import OrderRequest

HUNDRED = Decimal(100)


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


# --- the pre-trade controls ---------------------------------------------------------------


def _check_kill_switch(request: OrderRequest, switches: list[tuple[bool, str]]) -> None:
    for own, mode in switches:
        scope = "account" if own else "market"
        if mode == KillSwitch.Mode.CANCEL_ONLY:
            raise RiskError(RiskErrorCode.KILL_SWITCH, f"The {scope} is cancel-only: new orders are not accepted.", scope=scope)
        if request.side != Order.Side.SELL:
            raise RiskError(RiskErrorCode.REDUCE_ONLY, f"The {scope} is reduce-only: only sell orders are accepted.", scope=scope)


def _check_size(request: OrderRequest, limits: selectors.Limits, reference: Decimal | None) -> None:
    if limits.max_order_qty is not None and request.quantity is not None and request.quantity > limits.max_order_qty:
        raise RiskError(RiskErrorCode.MAX_ORDER_QTY, f"The order's quantity is above the maximum of {_fmt(limits.max_order_qty)}.", limit=str(limits.max_order_qty))
    if limits.max_order_notional is not None:
        notional = order_notional(request=request, reference=reference)
        if notional is not None and notional > limits.max_order_notional:
            raise RiskError(RiskErrorCode.MAX_ORDER_NOTIONAL, f"The order's value is above the maximum of {_fmt(limits.max_order_notional)}.", limit=str(limits.max_order_notional))


def price_collar(*, reference: Decimal | None, pct: Decimal | None) -> tuple[Decimal, Decimal] | None:
    """The collar ``reference × (1 ± pct/100)`` (None: no reference or no collar)."""
    if reference is None or pct is None:
        return None
    return reference * (1 - pct / HUNDRED), reference * (1 + pct / HUNDRED)


def _check_collar(request: OrderRequest, limits: selectors.Limits, reference: Decimal | None) -> None:
    collar = price_collar(reference=reference, pct=limits.price_collar_pct)
    if collar is None or request.price is None:
        return
    low, high = collar
    if not (low <= request.price <= high):
        raise RiskError(RiskErrorCode.PRICE_COLLAR, f"price must be between {_fmt(low)} and {_fmt(high)} (the risk collar).", low=_fmt(low), high=_fmt(high))


def _check_open_orders(market: Market, limits: selectors.Limits, here: int, total: int) -> None:
    if limits.max_open_orders_per_market is not None and here >= limits.max_open_orders_per_market:
        raise RiskError(RiskErrorCode.MAX_OPEN_ORDERS_MARKET, f"At most {limits.max_open_orders_per_market} open orders on {market.symbol}.", limit=limits.max_open_orders_per_market)
    if limits.max_open_orders is not None and total >= limits.max_open_orders:
        raise RiskError(RiskErrorCode.MAX_OPEN_ORDERS_ACCOUNT, f"At most {limits.max_open_orders} open orders on all markets.", limit=limits.max_open_orders)


def _check_daily_notional(request: OrderRequest, user: Any, market: Market, limits: selectors.Limits, reference: Decimal | None, now: Any) -> None:
    if limits.max_daily_notional is None:
        return
    notional = order_notional(request=request, reference=reference) or Decimal(0)
    rate = usdt_value_of(market.quote.symbol) or Decimal(1)
    used = selectors.traded_notional_today_usdt(user=user, now=now)
    if used + notional * rate > limits.max_daily_notional:
        raise RiskError(
            RiskErrorCode.DAILY_NOTIONAL, f"The daily traded value limit of {_fmt(limits.max_daily_notional)} USDT would be exceeded.",
            limit=_fmt(limits.max_daily_notional), used=_fmt(used),
        )


def order_fingerprint(*, request: OrderRequest, user: Any) -> str:
    """What makes two orders "the same" for the duplicate guard."""
    return "|".join(str(x) for x in (user.pk, request.market.pk, request.side, request.type, request.price, request.stop_price, request.quantity, request.quote_order_qty))


def _check_duplicate(request: OrderRequest, user: Any, limits: selectors.Limits) -> None:
    window = limits.duplicate_window_ms
    if not window:
        return
    if counters.duplicate_seen(fingerprint=order_fingerprint(request=request, user=user), window_ms=window):
        raise RiskError(RiskErrorCode.DUPLICATE_ORDER, f"The same order was sent within {window} ms.", window_ms=window)


def _check_rate(user: Any, limits: selectors.Limits) -> None:
    if limits.orders_per_10s is None and limits.orders_per_day is None:
        return
    counts = counters.order_counts_add(user_id=user.pk)
    counters.counts_remember(user, counts)  # the response's X-MBX-ORDER-COUNT headers: no second read
    for name, limit, interval in (("10S", limits.orders_per_10s, "10 SECOND"), ("1D", limits.orders_per_day, "1 DAY")):
        if limit is not None and counts[name] > limit:
            raise RiskError(RiskErrorCode.ORDER_RATE_LIMITED, f"Too many new orders; current limit is {limit} orders per {interval}.", limit=limit, interval=interval)


def order_check(*, request: OrderRequest, user: Any, market: Market, reference: Decimal | None = None, now: Any = None) -> None:
    """Allow a new order or refuse it (raise :class:`RiskError`). Writes nothing to the
    database; counts the order in the rate counters only once every other control passed,
    and a refusal in the day's breach counters (the admin dashboard)."""
    try:
        snapshot = selectors.pretrade_snapshot(user=user, market=market)  # one round trip
        limits = snapshot.limits
        _check_kill_switch(request, snapshot.switches)
        _check_size(request, limits, reference)
        _check_collar(request, limits, reference)
        _check_open_orders(market, limits, snapshot.open_here, snapshot.open_total)
        _check_daily_notional(request, user, market, limits, reference, now)
        _check_duplicate(request, user, limits)
        _check_rate(user, limits)
    except RiskError as exc:
        counters.breach_add(code=exc.code, day=selectors.utc_day_start(now).date().isoformat())
        raise
