"""Pre-trade risk: the hook every new order passes before it is held and recorded.

:func:`order_check` is the last of ``trading.orders.ORDER_CHECKS``: it sees the parsed
request (``trading.orders.OrderRequest``), the user and the market, and refuses by raising
:class:`risk.errors.RiskRejected` (``risk_rejected``, HTTP 403; Binance -2010). It must not
write: a refusal leaves no order, no hold and no journal event. Today it allows everything;
the risk issue fills it in (position limits, exposure, velocity)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: trading.orders imports this module
    from trading.models import Market
    from trading.orders import OrderRequest


def order_check(*, request: OrderRequest, user: Any, market: Market) -> None:
    """Allow or refuse a new order (raise ``RiskRejected``). Allows everything for now."""
    return None
