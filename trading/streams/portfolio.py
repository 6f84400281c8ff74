"""The portfolio page's read model: balances valued in USDT, allocation, realized P&L.

Valuation uses each asset's last trade price against USDT (or the market's reference price
before its first trade); USDT is 1 and an asset with no USDT market is valued through USD at
par when such a market exists, else shown without a value. Realized P&L is computed per asset
with the average-cost method over the user's fills in USDT-quoted markets: buys raise the
position and its cost (fees in the base asset reduce the quantity received), sells realize
``(price − average cost) × quantity`` minus the quote fee. Read-only.
"""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from trading.models import EngineState, Market
from trading.selectors import fills_for_user
from wallets.selectors import balances_for_user

ZERO = Decimal(0)
VALUATION_QUOTES = ("USDT", "USD")
ALLOCATION_BUCKETS = 20


def _prices() -> dict[str, Decimal]:
    last = dict(EngineState.objects.values_list("market_id", "last_price"))
    prices: dict[str, Decimal] = {"USDT": Decimal(1)}
    for quote in VALUATION_QUOTES:
        for m in Market.objects.select_related("base", "quote").filter(quote__symbol=quote):
            price = last.get(m.pk) or m.reference_price
            if price and m.base.symbol not in prices:
                prices[m.base.symbol] = price
    prices.setdefault("USD", Decimal(1))
    return prices


def realized_pnl(*, user) -> dict[str, Decimal]:
    position: dict[str, Decimal] = defaultdict(Decimal)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    pnl: dict[str, Decimal] = defaultdict(Decimal)
    qs = fills_for_user(user=user).filter(market__quote__symbol="USDT").order_by("created_at", "id")
    for t in qs.iterator(chunk_size=2000):
        asset = t.market.base.symbol
        maker = t.maker_user_id == user.pk
        both = t.maker_user_id == t.taker_user_id
        sides = ["BUY", "SELL"] if both else [t.side_for(user.pk)]
        for side in sides:
            fee = t.maker_fee if (maker and not both) or (both and side == ("BUY" if t.is_buyer_maker else "SELL")) else t.taker_fee
            if side == "BUY":
                position[asset] += t.qty - fee
                cost[asset] += t.quote_qty
            else:
                avg = cost[asset] / position[asset] if position[asset] > 0 else t.price
                qty = min(t.qty, position[asset]) if position[asset] > 0 else ZERO
                pnl[asset] += (t.price - avg) * qty - fee
                cost[asset] -= avg * qty
                position[asset] -= qty
    return dict(pnl)


def portfolio_for_user(*, user) -> dict:
    prices = _prices()
    pnl = realized_pnl(user=user)
    rows, total = [], ZERO
    for b in balances_for_user(user=user):
        symbol = b.asset.symbol
        price = prices.get(symbol)
        value = (b.total * price) if price is not None else None
        if value:
            total += value
        rows.append({"asset": symbol, "name": b.asset.name, "available": b.available, "locked": b.locked, "total": b.total, "price": price, "value": value, "pnl": pnl.get(symbol)})
    rows.sort(key=lambda r: (r["value"] or ZERO), reverse=True)
    for r in rows:
        share = (r["value"] / total * 100) if (total and r["value"]) else ZERO
        r["share"] = share.quantize(Decimal("0.1"))
        r["bucket"] = int((share / 100 * ALLOCATION_BUCKETS).to_integral_value())
    pnl_total = sum((v for v in pnl.values()), ZERO)
    return {"rows": rows, "total": total, "pnl_total": pnl_total, "held": [r for r in rows if r["total"]]}
