"""Trading write services: place and cancel orders.

The engine (``trading.engine``) is the only writer of an order's execution state; these
services only *record intent*:

* :func:`order_place` takes one :class:`trading.orders.OrderRequest` (or builds it from keyword
  arguments), runs the ordered checks of :data:`trading.orders.ORDER_CHECKS`, computes the hold
  with :func:`trading.holds.order_hold`, and in ONE transaction inserts the order as
  ``PENDING_NEW`` and holds it (:func:`order_record`; ``wallets.services.balance_hold`` is the
  funds check, under the balance row lock). On commit the engine is woken right after the
  commit (:mod:`trading.engine.wakeup`: a coalesced ``NOTIFY`` outside the order transaction,
  only if the order committed).
* :func:`order_cancel` / :func:`order_cancel_all` set ``cancel_requested``; the engine cancels
  and releases the hold in its batch transaction. Pass ``wait=`` to block until it has.

Every refusal raises a :class:`kk99.errors.KK99Error` before anything is written, so
balances are untouched. What an order holds is documented in :mod:`trading.holds`.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from contextlib import nullcontext
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone

from kk99.conf import kk99_setting
from kk99.publish import publish_on_commit, user_group
from trading.engine.publishing import market_last_price_published
from trading.engine.wakeup import OrderWaiter, engine_wake_on_commit, order_with_engine_state
from trading.errors import TradingError, TradingErrorCode
from trading.holds import Hold, order_hold
from trading.models import EngineState, FeePreference, Market, Order
from trading.orders import OrderPlacement, OrderRequest, order_checks_run, order_request_build
from trading.payloads import order_payload
from trading.selectors import market_resolve, order_list_open
from trading.stp import trade_group_of, trade_group_sql
from wallets.errors import InsufficientFunds
from wallets.services import balance_hold, balance_hold_for_row, balance_hold_for_row_supported



# --- helpers ---------------------------------------------------------------------------


def engine_notify(*, symbol: str) -> None:
    """Wake the engine owning ``symbol`` once the current transaction commits — outside it,
    coalesced per transaction, dropped on rollback (:func:`trading.engine.wakeup.engine_wake_on_commit`).
    On SQLite a no-op (the engine polls)."""
    engine_wake_on_commit(symbol)


def market_reference_price(*, market: Market) -> Decimal | None:
    """The price band's reference: the last trade price the engine published after its latest
    commit (a cache read, no query per order; :func:`trading.engine.publishing.market_last_price_published`);
    on a cache miss the committed EngineState; the market's configured reference price before
    the first trade."""
    published, last = market_last_price_published(market.symbol)
    if not published:
        last = EngineState.objects.filter(market=market).values_list("last_price", flat=True).first()
    return last if last is not None else market.reference_price


# --- placing --------------------------------------------------------------------------


def order_place(
    *,
    user,
    request: OrderRequest | None = None,
    now=None,
    ledger_account=None,
    side_effect_type: str = Order.SideEffect.NO_SIDE_EFFECT,
    before_hold: Callable[[Order, Hold], None] | None = None,
    liquidation: bool = False,
    **fields: Any,
) -> Order:
    """Check and record a new order, holding what it can consume. Returns the order (status
    ``PENDING_NEW``; the engine processes it within milliseconds).

    ``request``: the :class:`~trading.orders.OrderRequest` an entry point built; or
    ``fields``, the keyword arguments of :func:`~trading.orders.order_request_build` with
    ``market`` a :class:`Market` or a symbol.

    Idempotent by ``client_order_id``: if this user already has an order with that id, that
    order is returned and nothing else happens.

    Raises :class:`~kk99.errors.KK99Error` (a trading, accounts or risk code); nothing is
    written then.

    Margin orders (``margin.services.margin_order_place``): ``ledger_account`` is the user's
    margin account the order holds in and settles to, ``side_effect_type`` its Binance
    sideEffectType, and ``before_hold(order, hold)`` runs inside the order's transaction right
    before the hold (MARGIN_BUY borrows the shortfall there); ``liquidation`` marks an order of
    the liquidation engine (``OrderPlacement.liquidation``)."""
    if request is None:
        request = order_request_build(**{**fields, "market": market_resolve(fields.get("market"), cached=True)})
    existing = _order_by_client_id(user=user, client_order_id=request.client_order_id)
    if existing is not None:
        return existing
    placement = OrderPlacement(
        user=user, request=request, reference=market_reference_price(market=request.market), now=now,
        account=ledger_account, side_effect_type=side_effect_type, liquidation=liquidation,
    )
    order_checks_run(placement)
    hold = order_hold(request=request, reference=placement.reference)
    try:
        return order_record(
            user=user, request=request, hold=hold, now=now, ledger_account=ledger_account,
            side_effect_type=side_effect_type, before_hold=before_hold,
        )
    except IntegrityError:
        # A concurrent request with the same client order id won the race.
        existing = _order_by_client_id(user=user, client_order_id=request.client_order_id)
        if existing is None:
            raise
        return existing


def _order_by_client_id(*, user, client_order_id: str | None) -> Order | None:
    if not client_order_id:
        return None
    return Order.objects.filter(user=user, client_order_id=client_order_id).first()


def _new_client_order_id() -> str:
    return "kk99-" + secrets.token_urlsafe(16)[:22]


def order_record(
    *,
    user,
    request: OrderRequest,
    hold: Hold,
    now=None,
    ledger_account=None,
    side_effect_type: str = Order.SideEffect.NO_SIDE_EFFECT,
    before_hold: Callable[[Order, Hold], None] | None = None,
) -> Order:
    """Insert the order and hold ``hold`` in one transaction; wake the engine and publish the
    order on commit. ``insufficient_balance`` (nothing written) if the hold does not fit.
    ``ledger_account``: hold in this (margin) account of the user instead of the spot account;
    ``before_hold`` runs in the transaction, after the insert, before the hold.

    PostgreSQL, spot orders: ONE statement (:func:`wallets.services.balance_hold_for_row`) — the
    balance moved if it covers the hold, the order inserted (with its trade group) only then, the
    journal event, its entries and the balance event — its own transaction when called outside
    one: one round trip instead of BEGIN, INSERT, hold, outbox and COMMIT. Margin orders (another
    ledger account, a borrow before the hold) take the general path."""
    now = now or timezone.now()
    market = request.market
    order = Order(
        user=user, market=market, client_order_id=request.client_order_id or _new_client_order_id(),
        side=request.side, type=request.type, time_in_force=request.time_in_force,
        price=request.price, stop_price=request.stop_price, quantity=request.quantity,
        quote_order_qty=request.quote_order_qty, protection_price=hold.protection_price, stp_mode=request.stp_mode,
        held_asset=hold.asset, held_amount=hold.amount, held_remaining=hold.amount,
        status=Order.Status.PENDING_NEW, created_at=now, updated_at=now,
        ledger_account=ledger_account, side_effect_type=side_effect_type,
    )
    memo = f"{market.symbol} {request.side} {request.type}"
    try:
        if ledger_account is None and before_hold is None and balance_hold_for_row_supported(user=user):
            # Inside a caller's transaction a savepoint keeps a duplicate client order id
            # (IntegrityError) from aborting it; on its own the statement is its transaction.
            with transaction.atomic() if connection.in_atomic_block else nullcontext():
                _order_insert_with_hold(order, hold=hold, memo=memo)
        else:
            with transaction.atomic():
                order.trade_group_id = trade_group_of(user_id=user.pk)
                order.save()
                if before_hold is not None:
                    before_hold(order, hold)
                balance_hold(
                    user=user, asset=hold.asset, amount=hold.amount, idempotency_key=f"order:{order.pk}:hold",
                    memo=memo, reference=f"order:{order.pk}", account=ledger_account,
                )
    except InsufficientFunds:
        raise TradingError(
            TradingErrorCode.INSUFFICIENT_BALANCE, "Account has insufficient balance for requested action.",
            asset=hold.asset.symbol, required=str(hold.amount),
        ) from None
    # After the commit (at once when the statement was its own transaction).
    engine_notify(symbol=market.symbol)
    publish_on_commit("order.update", [order_payload(order)], groups=[user_group(user.pk)])
    return order


_ORDER_INSERT: dict[frozenset[str], tuple[str, list]] = {}


def _order_insert_sql(db_defaults: frozenset[str]) -> tuple[str, list]:
    """``INSERT INTO trading_order (…) SELECT <every concrete column but id> FROM bal
    RETURNING id, trade_group_id``, built from the model's fields (a new field needs no change
    here) and cached; columns left to their database default (``db_defaults``) are omitted.
    The trade group is read by the statement itself."""
    cached = _ORDER_INSERT.get(db_defaults)
    if cached is None:
        qn = connection.ops.quote_name
        fields = [
            f for f in Order._meta.concrete_fields
            if not f.primary_key and not getattr(f, "generated", False) and f.attname != "trade_group_id" and f.attname not in db_defaults
        ]
        cols = ", ".join(qn(f.column) for f in fields)
        values = ", ".join(f"%(o_{i})s::{f.cast_db_type(connection)}" for i, f in enumerate(fields))
        sql = (
            f"INSERT INTO {qn(Order._meta.db_table)} ({cols}, {qn(Order._meta.get_field('trade_group_id').column)}) "
            f"SELECT {values}, {trade_group_sql('o_user')} FROM bal RETURNING id, trade_group_id"
        )
        cached = _ORDER_INSERT[db_defaults] = (sql, fields)
    return cached


def _order_insert_with_hold(order: Order, *, hold: Hold, memo: str) -> None:
    values = {f.attname: f.pre_save(order, True) for f in Order._meta.concrete_fields if not f.primary_key}
    sql, fields = _order_insert_sql(frozenset(name for name, v in values.items() if isinstance(v, DatabaseDefault)))
    params = {f"o_{i}": f.get_db_prep_save(values[f.attname], connection) for i, f in enumerate(fields)}
    params["o_user"] = order.user_id
    row = balance_hold_for_row(
        user=order.user, asset=hold.asset, amount=hold.amount, source_sql=sql, source_params=params,
        key_sql="'order:' || src.id || ':hold'", reference_sql="'order:' || src.id", memo=memo,
    )
    if row is None:
        raise InsufficientFunds(shortfalls=[{"asset": hold.asset.symbol, "missing": str(hold.amount)}])
    order.pk, order.trade_group_id = row
    order._state.adding = False
    order._state.db = "default"


# --- cancelling -----------------------------------------------------------------------


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


def order_cancel_all(*, user, market: Market | str, wait: float | None = None, ledger_account=None) -> list[Order]:
    """Ask the engine to cancel all the user's open orders in ``market`` (spot, or those of the
    margin account ``ledger_account``, or all of them with ``selectors.EVERY_ACCOUNT``); returns them
    (re-read after the engine finished them when ``wait`` is given).

    Each order is flagged by its own one-row UPDATE (autocommit when called outside a
    transaction): a multi-row UPDATE could lock rows in a different order than an engine batch
    updating the same orders, and deadlock with it."""
    market = market_resolve(market)
    ids = list(
        order_list_open(user=user, market=market, ledger_account=ledger_account).filter(cancel_requested=False)
        .order_by("pk").values_list("pk", flat=True)
    )
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


def order_wait(*, order: Order, timeout: float | None = None, until_final: bool = True, placed: bool = False) -> Order:
    """Re-read ``order`` until the engine has processed it: final (``until_final``) or at
    least out of PENDING_NEW with no cancel pending. Woken by the engine's commit
    (:class:`trading.engine.wakeup.OrderWaiter`), not a polling loop. Raises ``engine_timeout``
    (Binance -1007) after ``timeout`` seconds (default settings KK99 ENGINE_WAIT_SECONDS).

    ``placed``: ``order`` is the instance :func:`order_place` just committed (PENDING_NEW).
    With the wake-up dispatcher running, its first read is skipped: the dispatcher remembers
    the orders it was told about in the last seconds, so a batch that committed between the
    placement and the registration still wakes this waiter, and a missed message costs one
    WAIT_SLICE_SECONDS and a re-read — never an answer."""
    timeout = kk99_setting("ENGINE_WAIT_SECONDS") if timeout is None else timeout
    deadline = time.monotonic() + timeout
    with OrderWaiter(order.pk) as waiter:  # registered before the first read: no lost wake-up
        if placed and waiter.event is not None and order.status == Order.Status.PENDING_NEW:
            current = order
        else:
            current = Order.objects.select_related("market").get(pk=order.pk)
        while True:
            if until_final and current.status in Order.FINAL_STATUSES:
                return current
            if not until_final and current.status != Order.Status.PENDING_NEW and not (current.cancel_requested and current.is_open):
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                raise TradingError(TradingErrorCode.ENGINE_TIMEOUT, "The matching engine did not answer in time.", status=503, order_id=order.pk)
            state = waiter.wait(left)
            if state is not None and current.status == Order.Status.PENDING_NEW:
                # the batch that ran it for the first time said what it committed: no re-read
                current = order_with_engine_state(current, state)
            else:
                current = Order.objects.select_related("market").get(pk=order.pk)


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


def fee_preference_set(*, user, pay_fees_in_kk99: bool) -> FeePreference:
    """Opt in to (or out of) paying trading fees in KK99 at the configured discount. Applies
    from the engine's next batch: the engine reads the preference at settlement time."""
    pref, _ = FeePreference.objects.update_or_create(user=user, defaults={"pay_fees_in_kk99": bool(pay_fees_in_kk99)})
    return pref
