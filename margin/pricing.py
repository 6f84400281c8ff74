"""THE one place margin code gets prices (docs/margin.md, "Prices").

* :func:`mark_price` — the price of a market that margin decisions use.
* :func:`asset_price_usdt` — USDT per unit of an asset: 1 for USDT, else the mark price of the
  asset's USDT market (or the inverse of USDT's market in that asset), None if no market.
* :func:`usdt_value` — an amount's USDT value; an asset without a price is worth 0 (assets
  count for nothing, never for too much; a loan in an unpriced asset cannot be taken, since
  borrowing refuses assets without a price).

The mark price is :func:`marketdata.mark.mark_price`: a time-weighted average of the market's
trades between different users, each print and each move capped, tick-rounded (docs/margin.md
"Mark price, liquidation, insurance fund") — never a single last trade.
"""
from __future__ import annotations

from decimal import Decimal

from django.db.models import Q

from marketdata import mark as marketdata_mark
from trading.models import Market
from wallets.models import Asset

USDT = "USDT"


def mark_price(market: Market) -> Decimal | None:
    """The mark price of ``market``: :func:`marketdata.mark.mark_price` (time-weighted, capped,
    self-trades excluded — docs/margin.md "Mark price"), None when it has none."""
    return marketdata_mark.mark_price(market)


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
    """:func:`asset_price_usdt` of several assets at once, by symbol: ONE query finds every
    asset's USDT market (direct first, else inverse), then one mark price per market."""
    symbols = set(symbols)
    out: dict[str, Decimal | None] = {s: None for s in symbols}
    if USDT in symbols:
        out[USDT] = Decimal(1)
    wanted = symbols - {USDT}
    if not wanted:
        return out
    markets = Market.objects.select_related("base", "quote").filter(
        Q(base__symbol__in=wanted, quote__symbol=USDT) | Q(base__symbol=USDT, quote__symbol__in=wanted)
    )
    direct = {m.base.symbol: m for m in markets if m.quote.symbol == USDT}
    inverse = {m.quote.symbol: m for m in markets if m.base.symbol == USDT}
    for s in wanted:
        if s in direct:
            out[s] = mark_price(direct[s])
        elif s in inverse:
            price = mark_price(inverse[s])
            out[s] = None if not price else Decimal(1) / price
    return out
