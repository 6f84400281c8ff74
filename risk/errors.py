"""The risk app's refusal. Its code lives in the trading catalog (``risk_rejected``), so every
API renders it the same way (REST v1 403; ``/api/v3`` -2010)."""
from __future__ import annotations

from typing import Any

from trading.errors import TradingError, TradingErrorCode


class RiskRejected(TradingError):
    status = 403

    def __init__(self, message: str = "The order was refused by the exchange's risk checks.", **details: Any) -> None:
        super().__init__(TradingErrorCode.RISK_REJECTED, message, **details)
