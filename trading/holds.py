"""What an order holds: the one formula, shared by placement and the engine.

Fees are charged in the asset *received*, so they are never held. An order holds exactly what
it can still consume:

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

:func:`order_hold` answers for a new order (``trading.services.order_place``);
:func:`order_hold_target` for an order the engine has processed (what it must still hold
after a batch; the difference to ``held_remaining`` is released). Both use
:func:`hold_for` — a sell holds its quantity, a buy its quantity × a price.
"""
from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import TYPE_CHECKING

from trading.errors import TradingError, TradingErrorCode
from trading.markets import floor_to
from trading.models import Order

if TYPE_CHECKING:  # only for annotations: orders.py imports this module
    from trading.orders import OrderRequest
    from wallets.models import Asset


@dataclasses.dataclass(frozen=True, slots=True)
class Hold:
    asset: Asset
    amount: Decimal
    protection_price: Decimal | None = None


def hold_for(*, side: str, quantity: Decimal, price: Decimal | None) -> Decimal:
    """A sell holds its quantity (base); a buy its quantity × price (quote)."""
    if side == Order.Side.SELL:
        return quantity
    return quantity * price


def protection_price(*, request: OrderRequest, reference: Decimal | None) -> Decimal:
    """The per-unit ceiling of a buy without a limit price: the band's ceiling over the stop
    price (stop-market) or the reference price (market by quantity)."""
    market = request.market
    over = request.stop_price if request.is_stop else reference
    if over is None:
        raise TradingError(TradingErrorCode.NO_REFERENCE_PRICE, "The market has no reference price yet; use a limit order or quote_order_qty.")
    return floor_to(over * (1 + market.price_band_pct / Decimal(100)), market.tick_size)


def order_hold(*, request: OrderRequest, reference: Decimal | None) -> Hold:
    """What a new order holds (the table above)."""
    market = request.market
    if request.side == Order.Side.SELL:
        return Hold(market.base, hold_for(side=request.side, quantity=request.quantity, price=None))
    if request.is_market_by_quote:
        return Hold(market.quote, request.quote_order_qty)
    if request.is_limit:
        return Hold(market.quote, hold_for(side=request.side, quantity=request.quantity, price=request.price))
    ceiling = protection_price(request=request, reference=reference)
    return Hold(market.quote, hold_for(side=request.side, quantity=request.quantity, price=ceiling), protection_price=ceiling)


def order_notional(*, request: OrderRequest, reference: Decimal | None) -> Decimal | None:
    """The order's value in quote for the NOTIONAL filter and the KYC limit (None for a
    market order by quantity before the market has a reference price)."""
    if request.is_market_by_quote:
        return request.quote_order_qty
    if request.is_limit:
        return request.quantity * request.price
    if request.is_stop:
        return request.quantity * request.stop_price
    return request.quantity * reference if reference is not None else None


def order_hold_target(order: Order) -> Decimal:
    """What ``order`` must still hold after the engine's batch: nothing once final; the
    placement hold while it waits (new or untriggered); else its remaining quantity at its
    limit price (a resting order is always a limit order)."""
    if order.status in Order.FINAL_STATUSES:
        return Decimal(0)
    if order.status in (Order.Status.PENDING_NEW, Order.Status.PENDING_TRIGGER):
        return order.held_remaining
    return hold_for(side=order.side, quantity=order.remaining_qty, price=order.price)
