"""The quant studio's error codes (one StrEnum) and its exception."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from kk99.errors import KK99Error


class QuantErrorCode(StrEnum):
    BAD_DATA = "quant_bad_data"
    """OHLCV input (CSV or arrays) cannot be read or is inconsistent (details: none)."""
    UNKNOWN_STRATEGY = "quant_unknown_strategy"
    """No strategy with this name."""
    BAD_PARAMETER = "quant_bad_parameter"
    """A strategy, sizing or engine parameter is missing, unknown or out of range (details: param)."""
    NOT_ENOUGH_DATA = "quant_not_enough_data"
    """Fewer bars than the strategy's warm-up or the walk-forward split needs."""
    LOOK_AHEAD = "quant_look_ahead"
    """A strategy's signal at bar t changed when bars after t were removed: it peeks."""
    RISK_LIMIT = "quant_risk_limit"
    """The strategy bot refused an order that would break one of its risk limits."""


class QuantError(KK99Error):
    def __init__(self, code: QuantErrorCode, message: str, **details: Any) -> None:
        super().__init__(code, message, **details)
