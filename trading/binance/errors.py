"""Binance error codes and messages, and the mapping from KK99's error catalog.

Every refusal of ``/api/v3`` is rendered as ``{"code": <negative int>, "msg": "..."}`` with
the HTTP status Binance uses (4XX for the request's fault, 429/418 for limits, 5XX when the
outcome is unknown). KK99 errors raised by services keep one code each
(:mod:`trading.errors`, :mod:`accounts.errors`); :func:`from_kk99` translates them here, in
one place."""
from __future__ import annotations

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
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_MBX_KEY = -2015

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


def invalid_key() -> BinanceError:
    return BinanceError(REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.", status=401)


# KK99 code → (Binance code, message, HTTP status). ``{filter}`` / ``{param}`` are filled from
# the error's details.
_MAP: dict[str, tuple[int, str, int]] = {
    # trading.errors.TradingErrorCode
    "invalid_symbol": (BAD_SYMBOL, "Invalid symbol.", 400),
    "filter_failure": (INVALID_MESSAGE, "Filter failure: {filter}", 400),
    "market_closed": (NEW_ORDER_REJECTED, "Market is closed.", 400),
    "user_frozen": (NEW_ORDER_REJECTED, "This action is disabled on this account.", 400),
    "kyc_trading_not_allowed": (NEW_ORDER_REJECTED, "This action is disabled on this account.", 400),
    "kyc_order_limit": (NEW_ORDER_REJECTED, "Order exceeds the account's limit.", 400),
    "insufficient_balance": (NEW_ORDER_REJECTED, "Account has insufficient balance for requested action.", 400),
    "no_reference_price": (NEW_ORDER_REJECTED, "Market has no reference price yet.", 400),
    "unknown_order": (NO_SUCH_ORDER, "Order does not exist.", 400),
    "order_not_cancelable": (CANCEL_REJECTED, "Unknown order sent.", 400),
    "duplicate_client_order_id": (NEW_ORDER_REJECTED, "Duplicate order sent.", 400),
    "engine_timeout": (TIMEOUT, "Timeout waiting for response from backend server. Send status unknown; execution status unknown.", 503),
    # accounts.errors (signed requests and account state)
    "missing_parameter": (MANDATORY_PARAM, "Mandatory parameter '{parameter}' was not sent, was empty/null, or malformed.", 400),
    "invalid_recv_window": (BAD_RECV_WINDOW, "recvWindow must be less than {max_ms}", 400),
    "timestamp_outside_recv_window": (INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow.", 400),
    "bad_signature": (INVALID_SIGNATURE, "Signature for this request is not valid.", 400),
    "replayed_request": (INVALID_TIMESTAMP, "This request was already received within the recvWindow.", 400),
    "replay_check_unavailable": (DISCONNECTED, "Internal error; unable to process your request. Please try again.", 503),
    "unknown_parameter": (UNREAD_PARAMETERS, "Parameter '{parameter}' was not read: unknown or malformed name.", 400),
    "duplicate_parameter": (TOO_MANY_PARAMETERS, "Duplicate values for a parameter detected.", 400),
    "parameters_in_query_and_body": (TOO_MANY_PARAMETERS, "Signed parameters must be in the query string or the body, not both.", 400),
    "invalid_api_key": (REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.", 401),
    "api_key_ip_not_allowed": (REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.", 401),
    "api_key_permission_denied": (REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.", 401),
    "account_frozen": (NEW_ORDER_REJECTED, "This action is disabled on this account.", 400),
    "trading_not_allowed": (NEW_ORDER_REJECTED, "This action is disabled on this account.", 400),
}


def from_kk99(exc: KK99Error) -> BinanceError:
    """The Binance rendering of a KK99 error (``-1000`` for codes this API does not know)."""
    details = dict(exc.details)
    if exc.code == "invalid_parameter":
        name = details.get("parameter") or details.get("param") or ""
        text = exc.message.lower()
        if name and "required" in text:
            return mandatory(_binance_param(name))
        if name and "not allowed" in text:
            return not_required(_binance_param(name))
        if name:
            return BinanceError(ILLEGAL_CHARS, f"Illegal characters found in parameter '{_binance_param(name)}'; {exc.message}")
        return BinanceError(ILLEGAL_CHARS, "Illegal characters found in a parameter.")
    if exc.code == "timestamp_outside_recv_window" and details.get("ahead"):
        return BinanceError(INVALID_TIMESTAMP, "Timestamp for this request was 1000ms ahead of the server's time.")
    mapped = _MAP.get(exc.code)
    if mapped is None:
        return BinanceError(UNKNOWN, exc.message or "An unknown error occurred while processing the request.", status=exc.status if exc.status < 500 else 500)
    code, template, status = mapped
    try:
        msg = template.format(**details)
    except (KeyError, IndexError):
        msg = template.split(" {")[0].split("'{")[0]
    return BinanceError(code, msg, status=status)


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
