"""Market rules shared by the services and the engine: filters, price bands, sessions.

Pure functions of a :class:`~trading.models.Market` (and the clock); no writes."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.utils import timezone

if TYPE_CHECKING:  # trading.models imports this module (Market.clean); the rules need no import of it at run time
    from trading.models import Market


def is_multiple(value: Decimal, increment: Decimal) -> bool:
    return value % increment == 0


def floor_to(value: Decimal, increment: Decimal) -> Decimal:
    return (value / increment).to_integral_value(rounding=ROUND_FLOOR) * increment


def market_validate(*, market: Market) -> None:
    """Admin/seed validation: increments must be representable in the assets' precision, so
    every price × quantity the engine produces is exact in the ledger."""
    errors: dict[str, str] = {}
    base_prec = market.base.precision if market.base_id else 18
    quote_prec = market.quote.precision if market.quote_id else 18
    if market.step_size is not None and market.step_size > 0 and -market.step_size.normalize().as_tuple().exponent > base_prec:
        errors["step_size"] = f"More decimals than the base asset keeps ({base_prec})."
    if market.tick_size and market.step_size and market.tick_size > 0 and market.step_size > 0:
        product = (market.tick_size * market.step_size).normalize()
        if -product.as_tuple().exponent > quote_prec:
            errors["tick_size"] = f"tick_size × step_size has more decimals than the quote asset keeps ({quote_prec})."
    if market.asset_class == market.AssetClass.EQUITY:
        if market.session_open is None or market.session_close is None:
            errors["session_open"] = "Equity markets need session hours."
        try:
            ZoneInfo(market.session_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["session_timezone"] = "Unknown time zone."
    if errors:
        raise ValidationError(errors)


def market_session_is_open(*, market: Market, now: dt.datetime | None = None) -> bool:
    """Crypto trades around the clock; an equity market is open on its weekdays, between
    session_open (inclusive) and session_close (exclusive) local time, except on holidays."""
    if market.asset_class != market.AssetClass.EQUITY:
        return True
    if market.session_open is None or market.session_close is None:
        return False
    now = now or timezone.now()
    local = now.astimezone(ZoneInfo(market.session_timezone))
    if local.weekday() not in (market.session_weekdays or []):
        return False
    if local.date().isoformat() in set(market.holidays or []):
        return False
    return market.session_open <= local.time().replace(tzinfo=None) < market.session_close


def price_band(*, market: Market, reference: Decimal | None) -> tuple[Decimal, Decimal] | None:
    """(floor, ceiling) around the reference price, tick-aligned inward; None without a reference."""
    if reference is None or reference <= 0:
        return None
    pct = market.price_band_pct / Decimal(100)
    low = reference * (1 - pct)
    high = reference * (1 + pct)
    tick = market.tick_size
    low_aligned = -floor_to(-low, tick)  # ceil
    return max(low_aligned, tick), floor_to(high, tick)
