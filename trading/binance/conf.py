"""Tunables of the Binance-compatible API, read from ``settings.KK99`` with these defaults
(the lead adds them to ``kk99/settings/base.py``; until then the defaults apply)."""
from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # REQUEST_WEIGHT per IP per minute (Binance's is 6000).
    "BINANCE_WEIGHT_PER_MINUTE": 6000,
    # An IP that keeps sending after being limited (twice the limit in a minute) is banned
    # (HTTP 418) for this long.
    "BINANCE_BAN_SECONDS": 120,
    # newOrderRespType RESULT/FULL: how long POST /order waits for the engine to take the
    # order (so the response shows its status and fills). 0 = answer at once (status NEW).
    "BINANCE_ORDER_RESULT_WAIT_SECONDS": 2.0,
    # DELETE /order and /openOrders: how long to wait for the engine to finish the cancel.
    "BINANCE_CANCEL_WAIT_SECONDS": 2.0,
}


def binance_setting(name: str) -> Any:
    return getattr(settings, "KK99", {}).get(name, DEFAULTS[name])
