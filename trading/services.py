"""Trading write services: place and cancel orders.

The engine (``trading.engine``) is the only writer of an order's execution state; these
services only *record intent*:

* :func:`order_place` validates, then in ONE transaction inserts the order as ``PENDING_NEW``
  and holds exactly what it can consume (``wallets.services.balance_hold``). On commit the
  engine is woken right after the commit (:mod:`trading.engine.wakeup`: a coalesced
  ``NOTIFY`` outside the order transaction, only if the order committed).
* :func:`order_cancel` / :func:`order_cancel_all` set ``cancel_requested``; the engine cancels
  and releases the hold in its batch transaction. Pass ``wait=`` to block until it has.

Every refusal raises :class:`trading.errors.TradingError` before anything is written, so
balances are untouched.

What a new order holds (fees are charged in the asset *received*, so never held):

=========================================  ==================================================
BUY LIMIT / LIMIT_MAKER / STOP_*_LIMIT      quantity × price (quote)
BUY MARKET by quantity                      quantity × protection_price (quote), where
                                            protection_price = the price band's ceiling
                                            over the reference price; the order never pays
                                            more per unit, the unused part is released
BUY MARKET by quote_order_qty               quote_order_qty (quote)
BUY STOP_LOSS / TAKE_PROFIT (market)        quantity × (stop_price × (1 + band)) (quote)
SELL (any type)                             quantity (base)
=========================================  ==================================================
"""
from __future__ import annotations

import secrets
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from kk99.conf import kk99_setting
from kk99.publish import publish_on_commit, user_group
from trading.engine.publishing import market_last_price_published
from trading.engine.wakeup import OrderWaiter, engine_wake_on_commit
from trading.errors import TradingError, TradingErrorCode, filter_failure
from trading.markets import floor_to, is_multiple, market_session_is_open, price_band
from trading.models import EngineState, FeePreference, Market, Order
from wallets.errors import InsufficientFunds
from wallets.services import balance_hold

CLIENT_ORDER_ID_MAX = 36


# --- helpers ---------------------------------------------------------------------------


def engine_notify(*, symbol: str) -> None:
    """Wake the engine owning ``symbol`` once the current transaction commits — outside it,
    coalesced per transaction, dropped on rollback (:func:`trading.engine.wakeup.engine_wake_on_commit`).
    On SQLite a no-op (the engine polls)."""
    engine_wake_on_commit(symbol)


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _new_client_order_id() -> str:
    return "kk99-" + secrets.token_urlsafe(16)[:22]


MAX_DECIMAL = Decimal(10) ** 20
INT64_MAX = 2**63 - 1  # the C book counts prices in ticks and quantities in lots as int64


def _decimal(name: str, value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise TradingError(TradingErrorCode.INVALID_PARAMETER, f"{name} must be a decimal string, not a float.", param=name)
    try:
        result = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise TradingError(TradingErrorCode.INVALID_PARAMETER, f"{name} is not a number.", param=name) from None
    if not result.is_finite() or result <= 0:
        raise TradingError(TradingErrorCode.INVALID_PARAMETER, f"{name} must be positive.", param=name)
    if result >= MAX_DECIMAL:  # NUMERIC(38,18) holds at most 20 integer digits
        raise TradingError(TradingErrorCode.INVALID_PARAMETER, f"{name} is too large.", param=name)
    return result


def _choice(name: str, value: Any, choices: type) -> str:
    text = str(value or "").upper()
    if text not in choices.values:
        raise TradingError(TradingErrorCode.INVALID_PARAMETER, f"Invalid {name}: {value!r}.", param=name)
    return text


# Markets by symbol, per process, for MARKET_CACHE_SECONDS (default 1 s): resolving a symbol
# (the market and both assets) was 40 % of an order placement. A save or delete of a Market in
# this process clears the cache at once (signals, the admin); another process sees a change
# within the TTL — and the engine, which re-reads the market every batch, rejects orders that
# reach it in a market that is no longer TRADING, releasing their holds.
_market_cache: dict[str, tuple[float, Market]] = {}


def market_cache_clear(**kwargs) -> None:
    _market_cache.clear()


def _market_cache_seconds() -> float:
    from django.conf import settings

    return float(getattr(settings, "KK99", {}).get("MARKET_CACHE_SECONDS", 1.0))


def market_resolve(market: Market | str, *, cached: bool = False) -> Market:
    """A Market instance, or the one named by symbol (``invalid_symbol`` if none).
    ``cached``: may answer from the per-process cache (order placement)."""
    if isinstance(market, Market):
        return market
    symbol = str(market or "").upper()
    if cached:
        hit = _market_cache.get(symbol)
        if hit is not None and time.monotonic() - hit[0] < _market_cache_seconds():
            return hit[1]
    found = Market.objects.select_related("base", "quote").filter(symbol=symbol).first()
    if found is None:
        raise TradingError(TradingErrorCode.INVALID_SYMBOL, "Invalid symbol.", symbol=market)
    if cached and not connection.in_atomic_block:  # never cache a row a caller's transaction may roll back
        _market_cache[symbol] = (time.monotonic(), found)
    return found


def market_cache_signals_connect() -> None:
    """Wired in :meth:`trading.apps.TradingConfig.ready`."""
    from django.db.models.signals import post_delete, post_migrate, post_save

    post_save.connect(market_cache_clear, sender=Market, dispatch_uid="trading.services.market_cache.save")
    post_delete.connect(market_cache_clear, sender=Market, dispatch_uid="trading.services.market_cache.delete")
    post_migrate.connect(market_cache_clear, dispatch_uid="trading.services.market_cache.migrate")


def market_reference_price(*, market: Market) -> Decimal | None:
    """The price band's reference: the last trade price the engine published after its latest
    commit (a cache read, no query per order; :func:`trading.engine.publishing.market_last_price_published`);
    on a cache miss the committed EngineState; the market's configured reference price before
    the first trade."""
    published, last = market_last_price_published(market.symbol)
    if not published:
        last = EngineState.objects.filter(market=market).values_list("last_price", flat=True).first()
    return last if last is not None else market.reference_price


def _kyc_limits(user) -> tuple[bool, Decimal | None]:
    from accounts.selectors import kyc_limits  # accounts owns the tier table

    limits = kyc_limits(user=user)
    return bool(limits.get("can_trade")), limits.get("max_order_notional_usdt")


def market_assert_open(*, market: Market, now=None) -> None:
    if market.status != Market.Status.TRADING:
        raise TradingError(TradingErrorCode.MARKET_CLOSED, f"Market {market.symbol} is {market.status}; new orders are not accepted.", status_name=market.status)
    if not market_session_is_open(market=market, now=now):
        raise TradingError(TradingErrorCode.MARKET_CLOSED, f"Market {market.symbol} is outside its trading session.", status_name="SESSION_CLOSED")


# --- placing --------------------------------------------------------------------------


def order_place(
    *,
    user,
    market: Market | str,
    side: str,
    type: str,  # noqa: A002 — Binance's parameter name
    quantity: Decimal | str | None = None,
    price: Decimal | str | None = None,
    quote_order_qty: Decimal | str | None = None,
    stop_price: Decimal | str | None = None,
    time_in_force: str | None = "GTC",
    client_order_id: str | None = None,
    stp_mode: str = Order.StpMode.NONE,
    now=None,
) -> Order:
    """Validate and record a new order, holding what it can consume. Returns the order
    (status ``PENDING_NEW``; the engine processes it within milliseconds).

    Idempotent by ``client_order_id``: if this user already has an order with that id, that
    order is returned and nothing else happens.

    Raises :class:`TradingError` with a :class:`TradingErrorCode`; nothing is written then."""
    if client_order_id:
        client_order_id = str(client_order_id)
        if len(client_order_id) > CLIENT_ORDER_ID_MAX:
            raise TradingError(TradingErrorCode.INVALID_PARAMETER, "client_order_id is too long.", param="client_order_id")
        existing = Order.objects.filter(user=user, client_order_id=client_order_id).first()
        if existing is not None:
            return existing

    market = market_resolve(market, cached=True)
    side = _choice("side", side, Order.Side)
    type_ = _choice("type", type, Order.Type)
    stp_mode = _choice("stp_mode", stp_mode or Order.StpMode.NONE, Order.StpMode)
    quantity = _decimal("quantity", quantity)
    price = _decimal("price", price)
    quote_order_qty = _decimal("quote_order_qty", quote_order_qty)
    stop_price = _decimal("stop_price", stop_price)

    # Who may trade.
    if user.is_frozen or not user.is_active:
        raise TradingError(TradingErrorCode.USER_FROZEN, "This account is frozen and cannot trade.", status=403)
    can_trade, max_notional = _kyc_limits(user)
    if not can_trade:
        raise TradingError(TradingErrorCode.KYC_TRADING_NOT_ALLOWED, "Your verification level does not allow trading yet.", status=403)
    market_assert_open(market=market, now=now)

    # Parameters per type (Binance's rules).
    is_limit = type_ in Order.LIMIT_TYPES
    is_stop = type_ in Order.STOP_TYPES
    if type_ == Order.Type.LIMIT_MAKER:
        time_in_force = Order.TimeInForce.GTC
    if is_limit:
        time_in_force = _choice("time_in_force", time_in_force or "GTC", Order.TimeInForce)
        if price is None:
            raise TradingError(TradingErrorCode.INVALID_PARAMETER, "price is required for this order type.", param="price")
    else:
        if price is not None:
            raise TradingError(TradingErrorCode.INVALID_PARAMETER, "price is not allowed for this order type.", param="price")
        time_in_force = Order.TimeInForce.IOC if type_ != Order.Type.MARKET else Order.TimeInForce.GTC
    if is_stop and stop_price is None:
        raise TradingError(TradingErrorCode.INVALID_PARAMETER, "stop_price is required for this order type.", param="stop_price")
    if not is_stop and stop_price is not None:
        raise TradingError(TradingErrorCode.INVALID_PARAMETER, "stop_price is not allowed for this order type.", param="stop_price")
    if type_ == Order.Type.MARKET:
        if (quantity is None) == (quote_order_qty is None):
            raise TradingError(TradingErrorCode.INVALID_PARAMETER, "A market order needs exactly one of quantity or quote_order_qty.", param="quantity")
        if quote_order_qty is not None and side == Order.Side.SELL:
            raise TradingError(TradingErrorCode.INVALID_PARAMETER, "quote_order_qty is supported for market buys only.", param="quote_order_qty")
    else:
        if quote_order_qty is not None:
            raise TradingError(TradingErrorCode.INVALID_PARAMETER, "quote_order_qty is only for market orders.", param="quote_order_qty")
        if quantity is None:
            raise TradingError(TradingErrorCode.INVALID_PARAMETER, "quantity is required.", param="quantity")

    # Filters.
    for name, value in (("price", price), ("stop_price", stop_price)):
        if value is not None and not is_multiple(value, market.tick_size):
            raise filter_failure("PRICE_FILTER", f"{name} must be a multiple of {_fmt(market.tick_size)}.", param=name)
        if value is not None and value / market.tick_size > INT64_MAX:
            raise filter_failure("PRICE_FILTER", f"{name} is above the market's maximum price.", param=name)
    if quantity is not None:
        if not is_multiple(quantity, market.step_size):
            raise filter_failure("LOT_SIZE", f"quantity must be a multiple of {_fmt(market.step_size)}.")
        if quantity < market.min_qty or quantity > market.max_qty:
            raise filter_failure("LOT_SIZE", f"quantity must be between {_fmt(market.min_qty)} and {_fmt(market.max_qty)}.")
    if quote_order_qty is not None:
        quantum = Decimal(1).scaleb(-market.quote.precision)
        if quote_order_qty != quote_order_qty.quantize(quantum):
            raise TradingError(TradingErrorCode.INVALID_PARAMETER, f"quote_order_qty has more than {market.quote.precision} decimals.", param="quote_order_qty")

    reference = market_reference_price(market=market)
    band = price_band(market=market, reference=reference)
    if price is not None and band is not None and not (band[0] <= price <= band[1]):
        raise filter_failure("PERCENT_PRICE", f"price must be between {_fmt(band[0])} and {_fmt(band[1])}.")

    # Notional (for the NOTIONAL filter and the KYC limit), and the hold.
    protection_price: Decimal | None = None
    if type_ == Order.Type.MARKET and quote_order_qty is not None:
        notional = quote_order_qty
    elif is_limit:
        notional = quantity * price
    elif is_stop:
        notional = quantity * stop_price
    else:  # market by quantity
        notional = quantity * reference if reference is not None else None
    if notional is not None and notional < market.min_notional:
        raise filter_failure("NOTIONAL", f"the order's value must be at least {_fmt(market.min_notional)} {market.quote.symbol}.")
    if max_notional is not None and notional is not None and notional > max_notional:
        raise TradingError(TradingErrorCode.KYC_ORDER_LIMIT, f"Orders above {_fmt(max_notional)} need a higher verification level.", status=403, max_order_notional=str(max_notional))

    if side == Order.Side.SELL:
        held_asset, held = market.base, quantity
    elif type_ == Order.Type.MARKET and quote_order_qty is not None:
        held_asset, held = market.quote, quote_order_qty
    elif is_limit:
        held_asset, held = market.quote, quantity * price
    else:
        ceiling_of = stop_price if is_stop else reference
        if ceiling_of is None:
            raise TradingError(TradingErrorCode.NO_REFERENCE_PRICE, "The market has no reference price yet; use a limit order or quote_order_qty.")
        protection_price = floor_to(ceiling_of * (1 + market.price_band_pct / Decimal(100)), market.tick_size)
        held_asset, held = market.quote, quantity * protection_price

    now = now or timezone.now()
    order = Order(
        user=user,
        market=market,
        client_order_id=client_order_id or _new_client_order_id(),
        side=side,
        type=type_,
        time_in_force=time_in_force,
        price=price,
        stop_price=stop_price,
        quantity=quantity,
        quote_order_qty=quote_order_qty,
        protection_price=protection_price,
        stp_mode=stp_mode,
        held_asset=held_asset,
        held_amount=held,
        held_remaining=held,
        status=Order.Status.PENDING_NEW,
        created_at=now,
        updated_at=now,
    )
    try:
        with transaction.atomic():
            order.save()
            balance_hold(
                user=user,
                asset=held_asset,
                amount=held,
                idempotency_key=f"order:{order.pk}:hold",
                memo=f"{market.symbol} {side} {type_}",
                reference=f"order:{order.pk}",
            )
            engine_notify(symbol=market.symbol)
            publish_on_commit("order.update", [order_payload(order)], groups=[user_group(user.pk)])
    except InsufficientFunds:
        raise TradingError(
            TradingErrorCode.INSUFFICIENT_BALANCE,
            "Account has insufficient balance for requested action.",
            asset=held_asset.symbol,
            required=str(held),
        ) from None
    except IntegrityError:
        # A concurrent request with the same client order id won the race.
        if client_order_id:
            existing = Order.objects.filter(user=user, client_order_id=client_order_id).first()
            if existing is not None:
                return existing
        raise
    return order


# --- cancelling -----------------------------------------------------------------------


def order_get_for_user(*, user, order_id: int | None = None, client_order_id: str | None = None) -> Order:
    qs = Order.objects.select_related("market").filter(user=user)
    if order_id is not None:
        order = qs.filter(pk=order_id).first()
    elif client_order_id:
        order = qs.filter(client_order_id=client_order_id).first()
    else:
        raise TradingError(TradingErrorCode.INVALID_PARAMETER, "Either order id or client order id is required.", param="order_id")
    if order is None:
        raise TradingError(TradingErrorCode.UNKNOWN_ORDER, "Order does not exist.", status=404)
    return order


def order_cancel(*, user, order: Order, wait: float | None = None) -> Order:
    """Ask the engine to cancel ``order``. Cancels are honoured in every market status
    (halted and cancel-only markets included). With ``wait`` (seconds), blocks until the
    engine has finished the order and returns it re-read; otherwise returns at once."""
    if order.user_id != user.pk:
        raise TradingError(TradingErrorCode.UNKNOWN_ORDER, "Order does not exist.", status=404)
    with transaction.atomic():
        updated = Order.objects.filter(pk=order.pk, status__in=Order.OPEN_STATUSES).update(cancel_requested=True)
        if not updated:
            raise TradingError(TradingErrorCode.ORDER_NOT_CANCELABLE, "The order is already final.", status_name=Order.objects.get(pk=order.pk).status)
        engine_notify(symbol=order.market.symbol)
    order.cancel_requested = True
    if wait:
        return order_wait(order=order, timeout=wait)
    return order


def order_cancel_all(*, user, market: Market | str, wait: float | None = None) -> list[Order]:
    """Ask the engine to cancel all the user's open orders in ``market``; returns them
    (re-read after the engine finished them when ``wait`` is given).

    Each order is flagged by its own one-row UPDATE (autocommit when called outside a
    transaction): a multi-row UPDATE could lock rows in a different order than an engine batch
    updating the same orders, and deadlock with it."""
    market = market_resolve(market)
    ids = list(Order.objects.filter(user=user, market=market, status__in=Order.OPEN_STATUSES, cancel_requested=False).order_by("pk").values_list("pk", flat=True))
    for pk in ids:
        Order.objects.filter(pk=pk, status__in=Order.OPEN_STATUSES).update(cancel_requested=True)
    if ids:
        with transaction.atomic():
            engine_notify(symbol=market.symbol)
    orders = list(Order.objects.filter(pk__in=ids).order_by("pk"))
    if wait and orders:
        deadline = time.monotonic() + wait
        return [order_wait(order=o, timeout=max(0.0, deadline - time.monotonic())) for o in orders]
    return orders


def order_wait(*, order: Order, timeout: float | None = None, until_final: bool = True) -> Order:
    """Re-read ``order`` until the engine has processed it: final (``until_final``) or at
    least out of PENDING_NEW with no cancel pending. Woken by the engine's commit
    (:class:`trading.engine.wakeup.OrderWaiter`), not a polling loop. Raises ``engine_timeout``
    (Binance -1007) after ``timeout`` seconds (default settings KK99 ENGINE_WAIT_SECONDS)."""
    timeout = kk99_setting("ENGINE_WAIT_SECONDS") if timeout is None else timeout
    deadline = time.monotonic() + timeout
    with OrderWaiter(order.pk) as waiter:  # registered before the first read: no lost wake-up
        while True:
            current = Order.objects.select_related("market").get(pk=order.pk)
            if until_final and current.status in Order.FINAL_STATUSES:
                return current
            if not until_final and current.status != Order.Status.PENDING_NEW and not (current.cancel_requested and current.is_open):
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                raise TradingError(TradingErrorCode.ENGINE_TIMEOUT, "The matching engine did not answer in time.", status=503, order_id=order.pk)
            waiter.wait(left)


def order_cancel_replace(
    *,
    user,
    order: Order,
    mode: str = "STOP_ON_FAILURE",
    wait: float | None = None,
    **new_order: Any,
) -> tuple[Order | None, Order | None, TradingError | None]:
    """Binance cancelReplace: cancel ``order``, then place ``new_order`` (kwargs of
    :func:`order_place`, same user). Because the replacement usually needs the funds the old
    order holds, this waits (up to ``wait`` s) for the engine to finish the cancel before
    placing. ``mode`` STOP_ON_FAILURE: if the cancel fails (already final), nothing is placed;
    ALLOW_FAILURE: place anyway. Returns (cancelled order or None, new order or None, the
    error of the step that failed or None)."""
    cancelled: Order | None = None
    try:
        cancelled = order_cancel(user=user, order=order, wait=wait if wait is not None else kk99_setting("ENGINE_WAIT_SECONDS"))
        if cancelled.status != Order.Status.CANCELED:
            raise TradingError(TradingErrorCode.ORDER_NOT_CANCELABLE, "The order finished before it could be cancelled.", status_name=cancelled.status)
    except TradingError as exc:
        if mode == "STOP_ON_FAILURE":
            return cancelled, None, exc
    try:
        placed = order_place(user=user, **new_order)
    except TradingError as exc:
        return cancelled, None, exc
    return cancelled, placed, None


# --- payloads -------------------------------------------------------------------------


def order_payload(order: Order) -> dict[str, Any]:
    """The JSON shape of an order in published events (Decimals as strings)."""
    from trading.models import display_status

    def s(v):
        return None if v is None else str(v)

    return {
        "id": order.pk,
        "symbol": order.market.symbol if "market" in order._state.fields_cache else None,
        "market_id": order.market_id,
        "user_id": order.user_id,
        "client_order_id": order.client_order_id,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "price": s(order.price),
        "stop_price": s(order.stop_price),
        "quantity": s(order.quantity),
        "quote_order_qty": s(order.quote_order_qty),
        "executed_qty": s(order.executed_qty),
        "cumulative_quote_qty": s(order.cumulative_quote_qty),
        "status": display_status(order.status),
        "internal_status": order.status,
        "reject_reason": order.reject_reason,
        "engine_seq": order.engine_seq,
        "updated_at": order.updated_at.isoformat() if order.updated_at else None,
    }


def fee_preference_set(*, user, pay_fees_in_kk99: bool) -> FeePreference:
    """Opt in to (or out of) paying trading fees in KK99 at the configured discount. Applies
    from the engine's next batch: the engine reads the preference at settlement time."""
    pref, _ = FeePreference.objects.update_or_create(user=user, defaults={"pay_fees_in_kk99": bool(pay_fees_in_kk99)})
    return pref
