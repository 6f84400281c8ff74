"""Request parameters the way Binance reads them: from the query string and the
form-encoded body together, each name at most once, with Binance's error for each fault."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from urllib.parse import parse_qsl

from trading.binance import errors as E
from trading.binance.errors import BinanceError

_DECIMAL = re.compile(E.DECIMAL_RANGE)
_INT = re.compile(r"^-?[0-9]{1,20}$")
_CLIENT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,36}$")
_SYMBOL = re.compile(r"^[A-Z0-9_.-]{1,20}$")
INT64_MAX = 2**63 - 1

# Every parameter a signed /api/v3 endpoint reads (plus Binance's optional ones that are
# accepted and ignored). The signature verifier refuses any other name (-1104): a name this
# API does not read is a fragment of a re-cut request, not something a client meant.
SIGNED_PARAMETERS = frozenset({
    "symbol", "symbols", "side", "type", "timeInForce", "quantity", "quoteOrderQty", "price", "stopPrice",
    "trailingDelta", "icebergQty", "newClientOrderId", "origClientOrderId", "orderId", "newOrderRespType",
    "selfTradePreventionMode", "strategyId", "strategyType", "cancelRestrictions", "computeCommissionRates",
    "fromId", "startTime", "endTime", "limit", "omitZeroBalances", "windowSize", "interval",
    "preventedMatchId", "fromPreventedMatchId",
    "pegPriceType", "pegOffsetValue", "pegOffsetType",
})


class Params:
    """The parameters of one request. ``get``/``require``/``int``/``decimal``/``enum`` raise
    :class:`BinanceError` with Binance's code for a missing or malformed value."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    @classmethod
    def from_request(cls, request) -> Params:
        pairs = parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)
        content_type = (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if request.method in ("POST", "PUT", "DELETE") and content_type in ("application/x-www-form-urlencoded", ""):
            body = request.body
            if body:
                try:
                    pairs += parse_qsl(body.decode("ascii"), keep_blank_values=True)
                except UnicodeDecodeError:
                    raise BinanceError(E.ILLEGAL_CHARS, "Illegal characters found in a parameter.") from None
        values: dict[str, str] = {}
        for name, value in pairs:
            if name in values:
                raise BinanceError(E.TOO_MANY_PARAMETERS, "Duplicate values for a parameter detected.")
            values[name] = value
        return cls(values)

    def __contains__(self, name: str) -> bool:
        return self.values.get(name, "") != ""

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        return default if value is None or value == "" else value

    def require(self, name: str) -> str:
        value = self.values.get(name)
        if value is None or value == "":
            raise E.mandatory(name)
        return value

    def symbol(self, *, required: bool = True) -> str | None:
        value = self.require("symbol") if required else self.get("symbol")
        if value is None:
            return None
        value = value.upper()
        if not _SYMBOL.match(value):
            raise E.illegal("symbol", "^[A-Z0-9-_.]{1,20}$")
        return value

    def symbols(self) -> list[str] | None:
        """The ``symbols`` parameter: a JSON array of names (``["BTCUSDT","ETHUSDT"]``)."""
        raw = self.get("symbols")
        if raw is None:
            return None
        try:
            names = json.loads(raw)
        except ValueError:
            raise E.illegal("symbols", '["SYMBOL",…]') from None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and _SYMBOL.match(n.upper()) for n in names):
            raise E.illegal("symbols", '["SYMBOL",…]')
        return [n.upper() for n in names]

    def int(self, name: str, default: int | None = None, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        raw = self.get(name)
        if raw is None:
            return default
        if not _INT.match(raw):
            raise E.illegal(name, "^[0-9]{1,20}$")
        value = int(raw)
        if maximum is None:
            maximum = INT64_MAX  # ids and times are int64 in the database (a bigger one was a 500)
        if (minimum is not None and value < minimum) or value > maximum:
            raise BinanceError(E.ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'; legal range is '{minimum}..{maximum}'.")
        return value

    def decimal(self, name: str) -> Decimal | None:
        raw = self.get(name)
        if raw is None:
            return None
        if not _DECIMAL.match(raw):
            raise E.illegal(name, E.DECIMAL_RANGE)
        return Decimal(raw)

    def enum(self, name: str, choices, *, default: str | None = None, code: int = E.ILLEGAL_CHARS, msg: str | None = None) -> str | None:
        raw = self.get(name)
        if raw is None:
            return default
        if raw not in choices:
            raise BinanceError(code, msg or f"Illegal characters found in parameter '{name}'; legal range is '{'|'.join(choices)}'.")
        return raw

    def client_order_id(self, name: str) -> str | None:
        raw = self.get(name)
        if raw is None:
            return None
        if not _CLIENT_ID.match(raw):
            raise E.illegal(name, "^[a-zA-Z0-9-_]{1,36}$")
        return raw

    def boolean(self, name: str, default: bool = False) -> bool:
        raw = self.get(name)
        if raw is None:
            return default
        if raw.lower() not in ("true", "false"):
            raise E.illegal(name, "true|false")
        return raw.lower() == "true"
