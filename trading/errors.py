"""Trading's error codes (one StrEnum) and its exception.

The REST layer renders them as ``{"error": {"code", "message", "details"}}``; the
Binance-compatible layer maps each code (never the message) through the one catalog,
``trading.binance.errors.CATALOG``. ``details["filter"]`` names the failing Binance filter
for :func:`filter_failure`; ``details["param"]`` and ``details["problem"]`` say which parameter
of an ``invalid_parameter`` error is wrong and how (:class:`ParamProblem`).

A frozen account and a KYC tier that may not trade are the accounts app's codes
(``account_frozen``, ``trading_not_allowed``) on every API."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from kk99.errors import KK99Error


class TradingErrorCode(StrEnum):
    INVALID_SYMBOL = "invalid_symbol"
    """No such market."""
    INVALID_PARAMETER = "invalid_parameter"
    """A parameter is missing, not allowed for this order type, or malformed (details: param, problem)."""
    FILTER_FAILURE = "filter_failure"
    """PRICE_FILTER / LOT_SIZE / MARKET_LOT_SIZE / NOTIONAL / PERCENT_PRICE failed (details: filter)."""
    MARKET_CLOSED = "market_closed"
    """The market is not TRADING (halted, break, cancel-only) or an equity session is closed."""
    KYC_ORDER_LIMIT = "kyc_order_limit"
    """The order's notional exceeds the KYC tier's maximum (details: max_order_notional)."""
    RISK_REJECTED = "risk_rejected"
    """The pre-trade risk hook (``risk.services.order_check``) refused the order (details: reason)."""
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


class ParamProblem(StrEnum):
    """What is wrong with the parameter of an ``invalid_parameter`` error."""

    MALFORMED = "malformed"
    REQUIRED = "required"
    NOT_ALLOWED = "not_allowed"


class TradingError(KK99Error):
    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None, **details: Any) -> None:
        super().__init__(code, message, status=status, **details)


def filter_failure(filter_name: str, message: str, **details: Any) -> TradingError:
    return TradingError(TradingErrorCode.FILTER_FAILURE, f"Filter failure: {filter_name}. {message}", filter=filter_name, **details)


def invalid_parameter(param: str, message: str, *, problem: ParamProblem = ParamProblem.MALFORMED) -> TradingError:
    return TradingError(TradingErrorCode.INVALID_PARAMETER, message, param=param, problem=str(problem))
