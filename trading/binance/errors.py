"""Binance error codes and messages, and the mapping from KK99's error catalog.

Every refusal of ``/api/v3`` is rendered as ``{"code": <negative int>, "msg": "..."}`` with
the HTTP status Binance uses (4XX for the request's fault, 429/418 for limits, 5XX when the
outcome is unknown). KK99 errors raised by services keep one code each
(:mod:`trading.errors`, :mod:`accounts.errors`, :mod:`kk99.errors`); :data:`CATALOG` maps each
code — never the message text — to Binance's, in one table, and :func:`from_kk99` renders it."""
from __future__ import annotations

from typing import NamedTuple

from kk99.errors import KK99Error


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, *, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}

    def as_dict(self) -> dict:
        return {"code": self.code, "msg": self.msg}


UNKNOWN = -1000
DISCONNECTED = -1001
TOO_MANY_REQUESTS = -1003
TOO_MANY_ORDERS = -1015
TIMEOUT = -1007
INVALID_MESSAGE = -1013
UNKNOWN_ORDER_COMPOSITION = -1014
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
TOO_MANY_PARAMETERS = -1101
UNREAD_PARAMETERS = -1104
MANDATORY_PARAM = -1102
PARAM_NOT_REQUIRED = -1106
INVALID_TIF = -1115
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
BAD_COMBO = -1128
BAD_RECV_WINDOW = -1131
INVALID_LISTEN_KEY = -1125
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_MBX_KEY = -2015
# Margin (/sapi/v1/margin/*): Binance's -3xxx codes.
MARGIN_ACCOUNT_MISSING = -3003
MARGIN_EXCEED_MAX_BORROW = -3006
MARGIN_REPAY_EXCEEDS = -3015
MARGIN_TRANSFER_EXCEEDS = -3020
MARGIN_ACCOUNT_BANNED = -3022
MARGIN_NOT_VALID_ASSET = -3027
MARGIN_NOT_VALID_PAIR = -3028
MARGIN_SYSTEM_NO_ASSET = -3045

DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"


def mandatory(name: str) -> BinanceError:
    return BinanceError(MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str, legal: str) -> BinanceError:
    return BinanceError(ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def not_required(name: str) -> BinanceError:
    return BinanceError(PARAM_NOT_REQUIRED, f"Parameter '{name}' sent when not required.")


def bad_symbol() -> BinanceError:
    return BinanceError(BAD_SYMBOL, "Invalid symbol.")


def unknown_order_sent() -> BinanceError:
    return BinanceError(CANCEL_REJECTED, "Unknown order sent.")


def order_does_not_exist() -> BinanceError:
    return BinanceError(NO_SUCH_ORDER, "Order does not exist.")


def invalid_listen_key() -> BinanceError:
    return BinanceError(INVALID_LISTEN_KEY, "This listenKey does not exist.")


def invalid_key() -> BinanceError:
    return BinanceError(REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.", status=401)


class Mapping(NamedTuple):
    """One row of the catalog: the Binance code, its message (``{param}``, ``{filter}``, …
    filled from the error's details, never from its message) and the HTTP status on
    ``/api/v3``. The REST v1 rendering is the KK99 code itself."""

    binance_code: int
    msg: str
    status: int = 400


_DISABLED = "This action is disabled on this account."
_INVALID_KEY = "Invalid API-key, IP, or permissions for action."

# THE error catalog: every KK99 code that can reach /api/v3 (the REST v1 code is the key) →
# its Binance rendering. ``invalid_parameter`` is refined by ``details["problem"]``
# (trading.errors.ParamProblem) in PARAM_PROBLEMS below. A code missing here renders as
# -1000; tests/api/test_error_catalog.py proves every trading/common/signing code is here.
CATALOG: dict[str, Mapping] = {
    # kk99.errors.CommonErrorCode
    "invalid_input": Mapping(ILLEGAL_CHARS, "Illegal characters found in a parameter."),
    "not_found": Mapping(NO_SUCH_ORDER, "Order does not exist."),
    "permission_denied": Mapping(REJECTED_MBX_KEY, _INVALID_KEY, 401),
    "not_authenticated": Mapping(REJECTED_MBX_KEY, _INVALID_KEY, 401),
    "rate_limited": Mapping(TOO_MANY_REQUESTS, "Too many requests.", 429),
    "conflict": Mapping(NEW_ORDER_REJECTED, "Duplicate order sent."),
    # kk99.inputguard: hostile bytes refused before any view reads them
    "illegal_characters": Mapping(ILLEGAL_CHARS, "Illegal characters found in parameter '{param}'."),
    "invalid_encoding": Mapping(ILLEGAL_CHARS, "Illegal characters found in parameter '{param}'."),
    "value_too_long": Mapping(ILLEGAL_CHARS, "Illegal characters found in parameter '{param}'."),
    "number_out_of_range": Mapping(ILLEGAL_CHARS, "Illegal characters found in parameter '{param}'."),
    "too_many_parameters": Mapping(TOO_MANY_PARAMETERS, "Too many parameters sent for this endpoint."),
    # trading.errors.TradingErrorCode
    "invalid_symbol": Mapping(BAD_SYMBOL, "Invalid symbol."),
    "invalid_parameter": Mapping(ILLEGAL_CHARS, "Illegal characters found in parameter '{param}'."),
    "filter_failure": Mapping(INVALID_MESSAGE, "Filter failure: {filter}"),
    "market_closed": Mapping(NEW_ORDER_REJECTED, "Market is closed."),
    "kyc_order_limit": Mapping(NEW_ORDER_REJECTED, "Order exceeds the account's limit."),
    "risk_rejected": Mapping(NEW_ORDER_REJECTED, "Order was rejected by risk checks."),
    "insufficient_balance": Mapping(NEW_ORDER_REJECTED, "Account has insufficient balance for requested action."),
    "no_reference_price": Mapping(NEW_ORDER_REJECTED, "Market has no reference price yet."),
    "unknown_order": Mapping(NO_SUCH_ORDER, "Order does not exist."),
    "order_not_cancelable": Mapping(CANCEL_REJECTED, "Unknown order sent."),
    "duplicate_client_order_id": Mapping(NEW_ORDER_REJECTED, "Duplicate order sent."),
    "engine_timeout": Mapping(TIMEOUT, "Timeout waiting for response from backend server. Send status unknown; execution status unknown.", 503),
    # risk.errors.RiskErrorCode: the pre-trade controls
    "risk_max_order_qty": Mapping(INVALID_MESSAGE, "Filter failure: MAX_ORDER_QTY"),
    "risk_max_order_notional": Mapping(INVALID_MESSAGE, "Filter failure: MAX_ORDER_NOTIONAL"),
    "risk_price_collar": Mapping(INVALID_MESSAGE, "Filter failure: PRICE_COLLAR"),
    "risk_max_open_orders_market": Mapping(INVALID_MESSAGE, "Filter failure: MAX_NUM_ORDERS"),
    "risk_max_open_orders_account": Mapping(NEW_ORDER_REJECTED, "Account has too many open orders."),
    "order_rate_limited": Mapping(TOO_MANY_ORDERS, "Too many new orders; current limit is {limit} orders per {interval}.", 429),
    "risk_daily_notional": Mapping(NEW_ORDER_REJECTED, "Order exceeds the account's daily traded value limit."),
    "risk_duplicate_order": Mapping(NEW_ORDER_REJECTED, "Duplicate order sent."),
    "risk_kill_switch": Mapping(NEW_ORDER_REJECTED, "Cancel-only: new orders are not accepted."),
    "risk_reduce_only": Mapping(NEW_ORDER_REJECTED, "Reduce-only: only sell orders are accepted."),
    # accounts.errors: signed requests and account state
    "missing_parameter": Mapping(MANDATORY_PARAM, "Mandatory parameter '{param}' was not sent, was empty/null, or malformed."),
    "invalid_recv_window": Mapping(BAD_RECV_WINDOW, "recvWindow must be less than {max_ms}"),
    "timestamp_outside_recv_window": Mapping(INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow."),
    "bad_signature": Mapping(INVALID_SIGNATURE, "Signature for this request is not valid."),
    "replayed_request": Mapping(INVALID_TIMESTAMP, "This request was already received within the recvWindow."),
    "replay_check_unavailable": Mapping(DISCONNECTED, "Internal error; unable to process your request. Please try again.", 503),
    "unknown_parameter": Mapping(UNREAD_PARAMETERS, "Parameter '{param}' was not read: unknown or malformed name."),
    "duplicate_parameter": Mapping(TOO_MANY_PARAMETERS, "Duplicate values for a parameter detected."),
    "parameters_in_query_and_body": Mapping(TOO_MANY_PARAMETERS, "Signed parameters must be in the query string or the body, not both."),
    "invalid_api_key": Mapping(REJECTED_MBX_KEY, _INVALID_KEY, 401),
    "api_key_ip_not_allowed": Mapping(REJECTED_MBX_KEY, _INVALID_KEY, 401),
    "api_key_permission_denied": Mapping(REJECTED_MBX_KEY, _INVALID_KEY, 401),
    "account_frozen": Mapping(NEW_ORDER_REJECTED, _DISABLED),
    "trading_not_allowed": Mapping(NEW_ORDER_REJECTED, _DISABLED),
    "withdrawal_not_allowed": Mapping(NEW_ORDER_REJECTED, _DISABLED),
    # wallets.errors
    "insufficient_funds": Mapping(NEW_ORDER_REJECTED, "Account has insufficient balance for requested action."),
    # margin.errors (Binance's -3xxx margin codes)
    "margin_account_missing": Mapping(MARGIN_ACCOUNT_MISSING, "Margin account does not exist."),
    "margin_asset_not_borrowable": Mapping(MARGIN_NOT_VALID_ASSET, "Not a valid margin asset."),
    "margin_pair_invalid": Mapping(MARGIN_NOT_VALID_PAIR, "Not a valid margin pair."),
    "margin_borrow_exceeds_max": Mapping(MARGIN_EXCEED_MAX_BORROW, "Your borrow amount has exceed maximum borrow amount."),
    "margin_pool_insufficient": Mapping(MARGIN_SYSTEM_NO_ASSET, "The system does not have enough asset now."),
    "margin_repay_exceeds_debt": Mapping(MARGIN_REPAY_EXCEEDS, "Repay amount exceeds borrow amount."),
    "margin_transfer_exceeds_max": Mapping(MARGIN_TRANSFER_EXCEEDS, "Transfer out amount exceeds max amount."),
    "margin_order_breach": Mapping(NEW_ORDER_REJECTED, "Margin is insufficient."),
    "margin_account_liquidating": Mapping(MARGIN_ACCOUNT_BANNED, "Your account is in liquidation; this action is not allowed."),
}

# ``invalid_parameter`` by ``details["problem"]``: a missing parameter and one sent when not
# required have Binance codes of their own.
PARAM_PROBLEMS: dict[str, Mapping] = {
    "required": CATALOG["missing_parameter"],
    "not_allowed": Mapping(PARAM_NOT_REQUIRED, "Parameter '{param}' sent when not required."),
}

# A refinement by details, still keyed by code: a timestamp ahead of the server's clock.
TIMESTAMP_AHEAD = Mapping(INVALID_TIMESTAMP, "Timestamp for this request was 1000ms ahead of the server's time.")


def mapping_for(exc: KK99Error) -> Mapping | None:
    """The catalog row for ``exc``: chosen by its code and details only (never its message)."""
    if exc.code == "invalid_parameter" and not (exc.details.get("param") or exc.details.get("parameter")):
        return CATALOG["invalid_input"]
    if exc.code == "invalid_parameter":
        return PARAM_PROBLEMS.get(exc.details.get("problem"), CATALOG["invalid_parameter"])
    if exc.code == "timestamp_outside_recv_window" and exc.details.get("ahead"):
        return TIMESTAMP_AHEAD
    return CATALOG.get(exc.code)


def from_kk99(exc: KK99Error) -> BinanceError:
    """The Binance rendering of a KK99 error (``-1000`` for codes the catalog lacks)."""
    mapped = mapping_for(exc)
    if mapped is None:
        return BinanceError(UNKNOWN, "An unknown error occurred while processing the request.", status=exc.status if exc.status < 500 else 500)
    details = dict(exc.details)
    name = details.get("param") or details.get("parameter")
    if name:
        details["param"] = _binance_param(name)
    try:
        msg = mapped.msg.format(**details)
    except (KeyError, IndexError):
        msg = mapped.msg.split(" {")[0].split("'{")[0]
    return BinanceError(mapped.binance_code, msg, status=mapped.status)


_PARAM_NAMES = {
    "client_order_id": "newClientOrderId",
    "quote_order_qty": "quoteOrderQty",
    "stop_price": "stopPrice",
    "time_in_force": "timeInForce",
    "stp_mode": "selfTradePreventionMode",
    "order_id": "orderId",
}


def _binance_param(name: str) -> str:
    return _PARAM_NAMES.get(name, name)
