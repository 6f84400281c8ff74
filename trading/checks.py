"""System checks of the trading app (registered in ``TradingConfig.ready``)."""
from __future__ import annotations

import importlib

from django.core import checks


@checks.register("trading")
def native_orderbook_built(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The matching core is a compiled cffi module; without it no order can match."""
    try:
        importlib.import_module("trading.native._orderbook")
    except ImportError as exc:
        return [
            checks.Error(
                f"The native order book extension trading.native._orderbook is not built ({exc}).",
                hint="Run `pip install -e .` (or `make install`) in the repository root to compile it.",
                id="trading.E001",
            )
        ]
    return []
