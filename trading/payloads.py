"""The one JSON shape of an order in published events (``order.update``): Decimals as
strings, Binance's display status beside the internal one. Built here only — by
:func:`trading.services.order_record`, the engine's batch publisher and the user-data stream."""
from __future__ import annotations

from typing import Any

from trading.models import Order, display_status


def _s(value) -> str | None:
    return None if value is None else str(value)


def order_payload(order: Order, *, symbol: str | None = None, updated_iso: str | None = None) -> dict[str, Any]:
    """``symbol`` / ``updated_iso``: pass them when formatting many orders of one market and
    one timestamp (the engine's batch) to do it once; by default they come from the order."""
    if symbol is None and "market" in order._state.fields_cache:
        symbol = order.market.symbol
    if updated_iso is None and order.updated_at:
        updated_iso = order.updated_at.isoformat()
    return {
        "id": order.pk,
        "symbol": symbol,
        "market_id": order.market_id,
        "user_id": order.user_id,
        "client_order_id": order.client_order_id,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "price": _s(order.price),
        "stop_price": _s(order.stop_price),
        "quantity": _s(order.quantity),
        "quote_order_qty": _s(order.quote_order_qty),
        "executed_qty": _s(order.executed_qty),
        "cumulative_quote_qty": _s(order.cumulative_quote_qty),
        "status": display_status(order.status),
        "internal_status": order.status,
        "reject_reason": order.reject_reason,
        "engine_seq": order.engine_seq,
        "updated_at": updated_iso,
        "ledger_account_id": order.ledger_account_id,  # None: spot; else the margin account's
    }
