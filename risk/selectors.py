"""Risk reads: the limits in force, kill switches, order counters, usage and stored figures.

One home for each: :func:`limits_for` is THE resolution of a limit (account+market row →
account row → market row → ``settings.KK99["RISK_DEFAULTS"]``, field by field);
:func:`order_counts` reads the order-rate counters :mod:`risk.counters` keeps."""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from kk99.conf import kk99_setting
from risk import counters
from risk.models import KillSwitch, RiskFigure, RiskLimit
from trading.engine.fees import usdt_value_of
from trading.models import Market, Order, Trade

LIMIT_FIELDS = (
    "max_order_qty",
    "max_order_notional",
    "price_collar_pct",
    "max_open_orders_per_market",
    "max_open_orders",
    "orders_per_10s",
    "orders_per_day",
    "max_daily_notional",
    "duplicate_window_ms",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force for one account on one market (None = no limit)."""

    max_order_qty: Decimal | None = None
    max_order_notional: Decimal | None = None
    price_collar_pct: Decimal | None = None
    max_open_orders_per_market: int | None = None
    max_open_orders: int | None = None
    orders_per_10s: int | None = None
    orders_per_day: int | None = None
    max_daily_notional: Decimal | None = None
    duplicate_window_ms: int | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        return {f: (str(v) if isinstance(v, Decimal) else v) for f in LIMIT_FIELDS for v in [getattr(self, f)]}


_DECIMAL_FIELDS = {"max_order_qty", "max_order_notional", "price_collar_pct", "max_daily_notional"}


def _default(name: str) -> Any:
    value = kk99_setting("RISK_DEFAULTS").get(name)
    if value is None:
        return None
    return Decimal(str(value)) if name in _DECIMAL_FIELDS else int(value)


def _rank(row: RiskLimit) -> int:
    """Most specific first: account+market, account, market."""
    if row.user_id is not None and row.market_id is not None:
        return 0
    return 1 if row.user_id is not None else 2


def limits_for(*, user: Any, market: Market | None) -> Limits:
    """The limits in force for ``user`` on ``market`` (``market`` None: account-wide only).
    One query."""
    scope = Q(user_id=user.pk, market__isnull=True)
    if market is not None:
        scope |= Q(user_id=user.pk, market_id=market.pk) | Q(user__isnull=True, market_id=market.pk)
    rows = sorted(RiskLimit.objects.filter(scope), key=_rank)
    values: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        for row in rows:
            value = getattr(row, name)
            if value is not None:
                values[name] = value
                break
        else:
            values[name] = _default(name)
    return Limits(**values)


def market_limits(*, market: Market) -> Limits:
    """The limits every account has on ``market`` unless staff set its own (exchangeInfo)."""
    row = RiskLimit.objects.filter(user__isnull=True, market=market).first()
    return Limits(**{name: (getattr(row, name) if row is not None and getattr(row, name) is not None else _default(name)) for name in LIMIT_FIELDS})


def default_limits() -> Limits:
    return Limits(**{name: _default(name) for name in LIMIT_FIELDS})


def kill_switches_active(*, user: Any = None, market: Market | None = None) -> list[KillSwitch]:
    """The engaged switches on ``user`` and/or ``market`` (account first)."""
    scope = Q()
    if user is not None:
        scope |= Q(user_id=user.pk)
    if market is not None:
        scope |= Q(market_id=market.pk)
    if not scope:
        return []
    return sorted(KillSwitch.objects.filter(scope, released_at__isnull=True), key=lambda k: k.user_id is None)


def open_order_counts(*, user: Any, market: Market) -> tuple[int, int]:
    """(open orders on ``market``, open orders on all markets) — one query."""
    row = Order.objects.filter(user_id=user.pk, status__in=Order.OPEN_STATUSES).aggregate(
        total=Count("pk"), here=Count("pk", filter=Q(market_id=market.pk))
    )
    return row["here"], row["total"]


def utc_day_start(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def traded_notional_today_usdt(*, user: Any, now: dt.datetime | None = None) -> Decimal:
    """USDT value of the account's fills since 00:00 UTC (as maker or taker), each market's
    quote converted by :func:`trading.engine.fees.usdt_value_of`; a quote with no known USDT
    value counts at 1:1 (conservative for the stablecoins it is used with)."""
    start = utc_day_start(now)
    rows = (
        Trade.objects.filter(Q(maker_user_id=user.pk) | Q(taker_user_id=user.pk), created_at__gte=start)
        .values("market__quote__symbol")
        .annotate(total=Sum("quote_qty"))
    )
    total = Decimal(0)
    for row in rows:
        rate = usdt_value_of(row["market__quote__symbol"]) or Decimal(1)
        total += (row["total"] or Decimal(0)) * rate
    return total


def order_counts(*, user: Any) -> dict[str, int]:
    """The account's order counters: ``{"10S": n, "1D": n}`` (Binance's interval letters)."""
    return counters.order_counts_read(user_id=user.pk)


def order_count_headers(*, user: Any) -> dict[str, str]:
    """Binance's ``X-MBX-ORDER-COUNT-10S`` / ``-1D`` headers for ``user``."""
    if user is None or getattr(user, "pk", None) is None:
        return {}
    counts = order_counts(user=user)
    return {f"X-MBX-ORDER-COUNT-{k}": str(v) for k, v in counts.items()}


def risk_figures_latest(*, user: Any | None) -> list[RiskFigure]:
    """The latest night's figures for ``user`` (None: exchange-wide)."""
    qs = RiskFigure.objects.filter(user_id=None if user is None else user.pk)
    latest = qs.order_by("-as_of").values_list("as_of", flat=True).first()
    if latest is None:
        return []
    return list(qs.filter(as_of=latest).order_by("horizon_days", "confidence"))


def risk_usage(*, user: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    """What the account uses of its account-wide limits now."""
    open_total = Order.objects.filter(user_id=user.pk, status__in=Order.OPEN_STATUSES).count()
    counts = order_counts(user=user)
    return {
        "open_orders": open_total,
        "orders_10s": counts["10S"],
        "orders_1d": counts["1D"],
        "traded_notional_today_usdt": str(traded_notional_today_usdt(user=user, now=now)),
    }
