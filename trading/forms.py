"""The trading page's order form (HTMX): the browser's fields → the one typed order request.

The form offers LIMIT, MARKET and STOP_LOSS_LIMIT; a market buy may give the amount to spend
(``quote_order_qty``) instead of a quantity. Values stay strings here:
:func:`trading.orders.order_request_build` parses them exactly as for the APIs."""
from __future__ import annotations

from trading.models import Market, Order
from trading.orders import OrderRequest, order_request_build

FORM_TYPES = {"LIMIT": "Limit", "MARKET": "Market", "STOP_LOSS_LIMIT": "Stop-limit"}
FIELDS = ("price", "stop_price", "quantity", "quote_order_qty")


def order_form_values(post) -> tuple[dict[str, str], str, str]:
    """(the amount fields as typed, side, order type), upper-cased and stripped."""
    side = post.get("side", "").upper()
    order_type = post.get("type", "LIMIT").upper()
    values = {name: (post.get(name) or "").strip() for name in FIELDS}
    return values, side, order_type


WALLETS = {"spot": "Spot", "cross": "Cross margin", "isolated": "Isolated margin"}


def order_form_wallet(post) -> str:
    """Which account the form's order uses: ``spot`` (default), ``cross`` or ``isolated``
    (the market's isolated margin account); anything else is spot."""
    wallet = (post.get("wallet") or "spot").lower()
    return wallet if wallet in WALLETS else "spot"


def order_form_is_offered(*, side: str, order_type: str) -> bool:
    return side in (Order.Side.BUY, Order.Side.SELL) and order_type in FORM_TYPES


def order_form_request(*, market: Market, side: str, order_type: str, values: dict[str, str]) -> OrderRequest:
    """The form's order: a limit price unless MARKET, a stop price for STOP_LOSS_LIMIT, and a
    market buy by amount when only ``quote_order_qty`` was filled in."""
    fields: dict = {"quantity": values["quantity"] or None}
    if order_type != Order.Type.MARKET:
        fields["price"] = values["price"] or None
    if order_type == Order.Type.STOP_LOSS_LIMIT:
        fields["stop_price"] = values["stop_price"] or None
    if order_type == Order.Type.MARKET and side == Order.Side.BUY and values["quote_order_qty"] and not values["quantity"]:
        fields = {"quote_order_qty": values["quote_order_qty"]}
    return order_request_build(market=market, side=side, type=order_type, time_in_force="GTC", **fields)
