"""What ``/api/v3/exchangeInfo`` publishes of the pre-trade controls (Binance's shapes):
the ``ORDERS`` rate limits, ``EXCHANGE_MAX_NUM_ORDERS`` and each symbol's
``MAX_NUM_ORDERS`` — the limits every account has unless staff set its own."""
from __future__ import annotations

from typing import Any

from risk.models import RiskLimit
from risk.selectors import default_limits
from trading.models import Market


def rate_limits() -> list[dict[str, Any]]:
    limits = default_limits()
    out = []
    if limits.orders_per_10s is not None:
        out.append({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": limits.orders_per_10s})
    if limits.orders_per_day is not None:
        out.append({"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": limits.orders_per_day})
    return out


def exchange_filters() -> list[dict[str, Any]]:
    limits = default_limits()
    if limits.max_open_orders is None:
        return []
    return [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": limits.max_open_orders}]


def with_symbol_filters(symbols: list[tuple[Market, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Add ``MAX_NUM_ORDERS`` to each ``(market, symbol_info)``; one query for all markets."""
    default = default_limits().max_open_orders_per_market
    own = dict(
        RiskLimit.objects.filter(user__isnull=True, market_id__in=[m.pk for m, _ in symbols], max_open_orders_per_market__isnull=False)
        .values_list("market_id", "max_open_orders_per_market")
    )
    out = []
    for market, info in symbols:
        limit = own.get(market.pk, default)
        if limit is not None:
            info["filters"].append({"filterType": "MAX_NUM_ORDERS", "maxNumOrders": limit})
        out.append(info)
    return out
