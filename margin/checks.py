"""The margin step of the order pipeline (``trading.orders.check_margin`` calls it for margin
orders only; a check never writes).

A margin order is refused (``margin_order_breach`` / ``margin_account_liquidating``) when:

* its account is in LIQUIDATION or being liquidated (``MarginAccount.liquidating``; only the
  liquidation engine trades it then — its orders carry ``OrderPlacement.liquidation``);
* an isolated account's order is for another market than its own;
* MARGIN_BUY while the account may not borrow (NO_BORROW, MARGIN_CALL);
* the account uses portfolio margin and the SPAN what-if
  (``margin.whatif.order_requirement_after``) says the order, fully filled at its price, would
  leave equity below the requirement.

The funds themselves are checked by the hold (and a MARGIN_BUY's borrow, in the order's
transaction, by ``margin.services.margin_borrow``'s limits).
"""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from margin.errors import MarginError, MarginErrorCode
from margin.models import MarginAccount, MarginState as MarginStateKind
from margin.selectors import margin_state
from trading.models import Order

try:  # the span helper's module (issue 12): the seam for portfolio-margin what-if
    import margin.whatif as whatif_module
except ModuleNotFoundError as exc:  # pragma: no cover — present once the span branch is merged
    if exc.name != "margin.whatif":
        raise
    whatif_module = None

if TYPE_CHECKING:
    from trading.orders import OrderPlacement


def order_asset_deltas(p: OrderPlacement) -> dict[str, Decimal]:
    """What the order does to the account's net positions if it fills completely at its limit
    price (the reference price for a market order): + base / − quote for a buy."""
    r, market = p.request, p.market
    price = r.price or r.stop_price or p.reference or Decimal(0)
    if r.quote_order_qty is not None:
        quote = r.quote_order_qty
        qty = quote / price if price else Decimal(0)
    else:
        qty = r.quantity
        quote = qty * price
    sign = 1 if r.side == Order.Side.BUY else -1
    return {market.base.symbol: sign * qty, market.quote.symbol: -sign * quote}


def order_margin_check(p: OrderPlacement) -> None:
    if p.liquidation:
        return  # the liquidation engine's own orders (margin.liquidation)
    margin = MarginAccount.objects.select_related("account").filter(account=p.account).first()
    if margin is None or margin.account.user_id != p.user.pk:
        raise MarginError(MarginErrorCode.ACCOUNT_MISSING, "Margin account does not exist.", status=404)
    symbol = margin.account.isolated_symbol
    if symbol and symbol != p.market.symbol:
        raise MarginError(MarginErrorCode.PAIR_INVALID, f"This isolated margin account trades {symbol} only.", symbol=p.market.symbol)
    state = margin_state(margin)
    if margin.liquidating or state.state == MarginStateKind.LIQUIDATION:
        raise MarginError(MarginErrorCode.ACCOUNT_LIQUIDATING, "The margin account is in liquidation; new orders are not accepted.", status=409)
    if p.side_effect_type == Order.SideEffect.MARGIN_BUY and state.liabilities > 0 and not state.may_borrow:
        raise MarginError(
            MarginErrorCode.ORDER_BREACHES_MARGIN, f"The margin account is in {state.state}: it may not borrow.", state=state.state
        )
    if margin.portfolio_margin and whatif_module is not None:
        try:
            after = whatif_module.order_requirement_after(margin, asset_deltas=order_asset_deltas(p))
        except whatif_module.WhatIfError as exc:
            raise MarginError(MarginErrorCode.ORDER_BREACHES_MARGIN, f"The order's margin cannot be computed: {exc}") from None
        if not after.accepted:
            raise MarginError(
                MarginErrorCode.ORDER_BREACHES_MARGIN, "The order would leave the account below its portfolio margin requirement.",
                requirement=str(after.requirement_after), equity=str(after.equity_after),
            )
