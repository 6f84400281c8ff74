"""THE one place margin code gets prices (docs/margin.md, "Prices").

* :func:`mark_price` — the price of a market that margin decisions use.
* :func:`asset_price_usdt` — USDT per unit of an asset: 1 for USDT, else the mark price of the
  asset's USDT market (or the inverse of USDT's market in that asset), None if no market.
* :func:`usdt_value` — an amount's USDT value; an asset without a price is worth 0 (assets
  count for nothing, never for too much; a loan in an unpriced asset cannot be taken, since
  borrowing refuses assets without a price).

The body of :func:`mark_price` is a placeholder until ``marketdata.mark`` lands (the liq
helper switches it): today it is the last committed trade price of the market (EngineState)
or its configured reference price — NOT manipulation-resistant (PITFALLS: "mark price ≠ last
trade"). Every caller goes through here, so the switch is one function body.
"""
from __future__ import annotations

from decimal import Decimal

from trading.models import EngineState, Market
from wallets.models import Asset

USDT = "USDT"


def mark_price(market: Market) -> Decimal | None:
    """The mark price of ``market`` (see the module docstring), None when it has none."""
    last = EngineState.objects.filter(market=market).values_list("last_price", flat=True).first()
    return last if last is not None else market.reference_price


def _asset_symbol(asset: Asset | str) -> str:
    return asset if isinstance(asset, str) else asset.symbol


def asset_price_usdt(asset: Asset | str) -> Decimal | None:
    """USDT per unit of ``asset`` (an Asset or its symbol), or None without a market."""
    symbol = _asset_symbol(asset)
    if symbol == USDT:
        return Decimal(1)
    market = Market.objects.select_related("base", "quote").filter(base__symbol=symbol, quote__symbol=USDT).first()
    if market is not None:
        return mark_price(market)
    market = Market.objects.select_related("base", "quote").filter(base__symbol=USDT, quote__symbol=symbol).first()
    if market is not None:
        price = mark_price(market)
        return None if not price else Decimal(1) / price
    return None


def usdt_value(asset: Asset | str, amount: Decimal) -> Decimal:
    """``amount`` of ``asset`` in USDT (exact product; 0 for an asset without a price)."""
    if not amount:
        return Decimal(0)
    price = asset_price_usdt(asset)
    return Decimal(0) if price is None else amount * price


def prices_usdt(symbols) -> dict[str, Decimal | None]:
    """:func:`asset_price_usdt` of several assets at once, by symbol."""
    return {s: asset_price_usdt(s) for s in set(symbols)}
