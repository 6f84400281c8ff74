"""Trading's error codes (one StrEnum) and its exception.

The REST layer renders them as ``{"error": {"code", "message", "details"}}``; the
Binance-compatible layer maps them (suggested mapping in ``BINANCE_CODES`` below).
``details["filter"]`` names the failing Binance filter for ``filter_failure``."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from kk99.errors import KK99Error


class TradingErrorCode(StrEnum):
    INVALID_SYMBOL = "invalid_symbol"
    """No such market."""
    INVALID_PARAMETER = "invalid_parameter"
    """A parameter is missing, not allowed for this order type, or malformed (details: param)."""
    FILTER_FAILURE = "filter_failure"
    """PRICE_FILTER / LOT_SIZE / MARKET_LOT_SIZE / NOTIONAL / PERCENT_PRICE failed (details: filter)."""
    MARKET_CLOSED = "market_closed"
    """The market is not TRADING (halted, break, cancel-only) or an equity session is closed."""
    USER_FROZEN = "user_frozen"
    """The account is frozen."""
    KYC_TRADING_NOT_ALLOWED = "kyc_trading_not_allowed"
    """The user's KYC tier may not trade."""
    KYC_ORDER_LIMIT = "kyc_order_limit"
    """The order's notional exceeds the KYC tier's maximum (details: max_order_notional)."""
    INSUFFICIENT_BALANCE = "insufficient_balance"
    """Not enough available balance for the hold."""
    NO_REFERENCE_PRICE = "no_reference_price"
    """A market buy by quantity needs a reference price to bound its hold."""
    UNKNOWN_ORDER = "unknown_order"
    """No such order for this user."""
    ORDER_NOT_CANCELABLE = "order_not_cancelable"
    """The order is already final (filled, canceled, expired, rejected)."""
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    """Returned only when a client id is re-used with different parameters (strict mode)."""
    ENGINE_TIMEOUT = "engine_timeout"
    """A service waited for the engine and it did not answer in time."""


# Suggested Binance mapping (code, msg) for the /api/v3 layer.
BINANCE_CODES: dict[str, tuple[int, str]] = {
    TradingErrorCode.INVALID_SYMBOL: (-1121, "Invalid symbol."),
    TradingErrorCode.INVALID_PARAMETER: (-1102, "Mandatory parameter was not sent, was empty/null, or malformed."),
    TradingErrorCode.FILTER_FAILURE: (-1013, "Filter failure: {filter}"),
    TradingErrorCode.MARKET_CLOSED: (-2010, "Market is closed."),
    TradingErrorCode.USER_FROZEN: (-2010, "This action is disabled on this account."),
    TradingErrorCode.KYC_TRADING_NOT_ALLOWED: (-2010, "This action is disabled on this account."),
    TradingErrorCode.KYC_ORDER_LIMIT: (-2010, "Order exceeds the account's limit."),
    TradingErrorCode.INSUFFICIENT_BALANCE: (-2010, "Account has insufficient balance for requested action."),
    TradingErrorCode.NO_REFERENCE_PRICE: (-2010, "Market has no reference price yet."),
    TradingErrorCode.UNKNOWN_ORDER: (-2013, "Order does not exist."),
    TradingErrorCode.ORDER_NOT_CANCELABLE: (-2011, "Unknown order sent."),
    TradingErrorCode.DUPLICATE_CLIENT_ORDER_ID: (-2010, "Duplicate order sent."),
    TradingErrorCode.ENGINE_TIMEOUT: (-1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
}


class TradingError(KK99Error):
    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None, **details: Any) -> None:
        super().__init__(code, message, status=status, **details)


def filter_failure(filter_name: str, message: str, **details: Any) -> TradingError:
    return TradingError(TradingErrorCode.FILTER_FAILURE, f"Filter failure: {filter_name}. {message}", filter=filter_name, **details)
