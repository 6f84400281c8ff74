"""What the margin UI and API show of the liquidation engine (the liq helper's
``margin.liquidation``): the liquidation price — computed by the SAME code that liquidates —
and the liquidation records. Until that module is merged: no price, no records."""
from __future__ import annotations

from decimal import Decimal

try:
    import margin.liquidation as liquidation_module
except ModuleNotFoundError as exc:  # pragma: no cover — present once the liq branch is merged
    if exc.name != "margin.liquidation":
        raise
    liquidation_module = None


def liquidation_price_of(margin, market) -> Decimal | None:
    """``margin.liquidation.liquidation_price_for`` (None when the price of ``market`` cannot
    liquidate the account, or before liq is merged)."""
    if liquidation_module is None:
        return None
    return liquidation_module.liquidation_price_for(margin, market)


def liquidation_prices_of_account(margin) -> dict[str, Decimal]:
    """Market symbol → the liquidation price shown for each position of a cross account
    (``margin.liquidation.liquidation_prices_of``: margin-level accounts and portfolio-margin
    (SPAN) accounts alike, by the test the liquidator applies); {} before liq is merged."""
    if liquidation_module is None or not hasattr(liquidation_module, "liquidation_prices_of"):
        return {}
    return liquidation_module.liquidation_prices_of(margin)


def liquidation_rows(*, user, isolated_symbol: str | None = None, start=None, end=None, offset: int = 0, limit: int = 50) -> tuple[list[dict], int]:
    """(Binance forceLiquidationRec rows, total) of ``user`` — liq's
    ``force_liquidation_rows``; ([], 0) until it exists."""
    if liquidation_module is None or not hasattr(liquidation_module, "force_liquidation_rows"):
        return [], 0
    return liquidation_module.force_liquidation_rows(user=user, isolated_symbol=isolated_symbol, start=start, end=end, offset=offset, limit=limit)
