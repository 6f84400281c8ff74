"""Risk's error codes (one StrEnum) and its exceptions.

Every refusal of a pre-trade control has its own code. The REST v1 rendering is the code
itself (``{"error": {"code": "risk_price_collar", …}}``); ``/api/v3`` maps each code — never
the message — through the one catalog, ``trading.binance.errors.CATALOG`` (-1013 for the
filter-like limits, -2010 for account refusals, -1015 with HTTP 429 for the order rate)."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from trading.errors import TradingError, TradingErrorCode


class RiskErrorCode(StrEnum):
    MAX_ORDER_QTY = "risk_max_order_qty"
    """The order's quantity is above the account's/market's maximum (details: limit)."""
    MAX_ORDER_NOTIONAL = "risk_max_order_notional"
    """The order's value (quote units) is above the maximum (details: limit)."""
    PRICE_COLLAR = "risk_price_collar"
    """A limit price outside the collar around the reference price (details: low, high)."""
    MAX_OPEN_ORDERS_MARKET = "risk_max_open_orders_market"
    """MAX_NUM_ORDERS: too many open orders on this market (details: limit)."""
    MAX_OPEN_ORDERS_ACCOUNT = "risk_max_open_orders_account"
    """Too many open orders on all markets (details: limit)."""
    ORDER_RATE_LIMITED = "order_rate_limited"
    """Too many new orders in 10 s or in a UTC day (details: limit, interval)."""
    DAILY_NOTIONAL = "risk_daily_notional"
    """The USDT value traded today plus this order's would exceed the daily limit (details: limit, used)."""
    DUPLICATE_ORDER = "risk_duplicate_order"
    """The same order (market, side, type, price, quantity) within the duplicate window (details: window_ms)."""
    KILL_SWITCH = "risk_kill_switch"
    """The account or market is cancel-only by its kill switch (details: scope)."""
    REDUCE_ONLY = "risk_reduce_only"
    """The account or market is reduce-only: only sells of base asset held are accepted (details: scope)."""


class RiskRejected(TradingError):
    """The generic refusal of the risk hook (``risk_rejected``; REST v1 403, /api/v3 -2010)."""

    status = 403

    def __init__(self, message: str = "The order was refused by the exchange's risk checks.", **details: Any) -> None:
        super().__init__(TradingErrorCode.RISK_REJECTED, message, **details)


class RiskError(TradingError):
    """A refusal by one named control (a :class:`RiskErrorCode`)."""

    STATUSES = {
        RiskErrorCode.ORDER_RATE_LIMITED: 429,
        RiskErrorCode.KILL_SWITCH: 403,
        RiskErrorCode.REDUCE_ONLY: 403,
        RiskErrorCode.DAILY_NOTIONAL: 403,
    }

    def __init__(self, code: RiskErrorCode, message: str, **details: Any) -> None:
        super().__init__(code, message, status=self.STATUSES.get(code, 400), **details)
