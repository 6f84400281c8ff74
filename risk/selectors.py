"""Risk reads: the limits in force, kill switches, order counters, usage and stored figures.

One home for each: :func:`limits_for` is THE resolution of a limit (account+market row →
account row → market row → ``settings.KK99["RISK_DEFAULTS"]``, field by field);
:func:`order_counts` reads the order-rate counters :mod:`risk.counters` keeps."""
from __future__ import annotations

import dataclasses
import functools
import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from kk99.conf import kk99_setting
from kk99.db import pg_cursor
from risk import counters
from risk.models import KillSwitch, RiskFigure, RiskLimit
from trading.selectors import market_status as trading_market_status
from trading.fees import usdt_value_of
from trading.markets import market_session_is_open
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


LIMIT_LABELS = {
    "max_order_qty": "Maximum quantity per order",
    "max_order_notional": "Maximum value per order (quote)",
    "price_collar_pct": "Price collar around the reference (%)",
    "max_open_orders_per_market": "Open orders per market",
    "max_open_orders": "Open orders on all markets",
    "orders_per_10s": "New orders per 10 seconds",
    "orders_per_day": "New orders per day",
    "max_daily_notional": "Traded value per day (USDT)",
    "duplicate_window_ms": "Duplicate-order window (ms, 0 = off)",
}


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
        return {f: (f"{v.normalize():f}" if isinstance(v, Decimal) else v) for f in LIMIT_FIELDS for v in [getattr(self, f)]}

    def labelled(self) -> list[tuple[str, str | int | None]]:
        """(label, value) for people, in :data:`LIMIT_FIELDS` order."""
        values = self.as_dict()
        return [(LIMIT_LABELS[f], values[f]) for f in LIMIT_FIELDS]


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


@dataclasses.dataclass(frozen=True, slots=True)
class PretradeSnapshot:
    """Everything the pre-trade hook reads from the database for one order."""

    limits: Limits
    switches: list[tuple[bool, str]]  # (is the account's own switch, mode), account first
    open_here: int
    open_total: int


def _resolve(rows: list[dict[str, Any]], user_id: int, market_id: int | None) -> Limits:
    def rank(row: dict[str, Any]) -> int:
        if row["user_id"] == user_id and row["market_id"] is not None:
            return 0
        return 1 if row["user_id"] == user_id else 2

    rows = sorted(rows, key=rank)
    values: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        value = next((row[name] for row in rows if row[name] is not None), None)
        if value is None:
            value = _default(name)
        elif name in _DECIMAL_FIELDS:
            value = Decimal(str(value))
        else:
            value = int(value)
        values[name] = value
    return Limits(**values)


_SNAPSHOT_SQL = """
SELECT 'L', l.user_id, l.market_id, {limit_cols}
  FROM risk_risklimit l
 WHERE (l.user_id = %(u)s AND (l.market_id = %(m)s OR l.market_id IS NULL)) OR (l.user_id IS NULL AND l.market_id = %(m)s)
UNION ALL
SELECT 'K', k.user_id, k.market_id, k.mode, {k_nulls}
  FROM risk_killswitch k
 WHERE k.released_at IS NULL AND (k.user_id = %(u)s OR k.market_id = %(m)s)
UNION ALL
SELECT 'O',
       (SELECT count(*) FROM (SELECT 1 FROM trading_order o WHERE o.user_id = %(u)s AND o.status = ANY(%(open)s)
                               LIMIT {cap_total}) t),
       (SELECT count(*) FROM (SELECT 1 FROM trading_order o WHERE o.user_id = %(u)s AND o.status = ANY(%(open)s)
                               AND o.market_id = %(m)s LIMIT {cap_here}) t),
       {o_nulls}
"""

# The open-order counts only need to reach the limit in force: each is counted up to a cap
# that is at least that limit — the largest value any limit row in scope (or the default) sets
# — so an account with thousands of open orders costs a bounded count, not one row per order
# (6,000 open orders made placement 5× slower). ``min(count, cap)`` answers "count ≥ limit"
# exactly as the full count would, because cap ≥ limit; with no limit in force the cap is 0.
_CAP_SQL = """COALESCE((SELECT GREATEST(max(l.{field}), %({default})s::bigint) FROM risk_risklimit l
 WHERE (l.user_id = %(u)s AND (l.market_id = %(m)s OR l.market_id IS NULL)) OR (l.user_id IS NULL AND l.market_id = %(m)s)), 0)"""


@functools.cache
def _snapshot_sql() -> str:
    cols = ", ".join(f"l.{f}::text" for f in LIMIT_FIELDS)
    nulls = ", ".join(["NULL::text"] * (len(LIMIT_FIELDS) - 1))
    return _SNAPSHOT_SQL.format(
        limit_cols=cols, k_nulls=nulls, o_nulls="NULL::text, " + nulls,
        cap_total=_CAP_SQL.format(field="max_open_orders", default="d_total"),
        cap_here=_CAP_SQL.format(field="max_open_orders_per_market", default="d_here"),
    )


def pretrade_snapshot(*, user: Any, market: Market) -> PretradeSnapshot:
    """The limits in force, the engaged kill switches and the open-order counts for ``user``
    on ``market``: ONE round trip on PostgreSQL (three queries elsewhere). The same
    resolution as :func:`limits_for`. On PostgreSQL the counts stop at the largest open-order
    limit in scope (see ``_CAP_SQL``): enough to enforce the limit, bounded work."""
    if connection.vendor != "postgresql":
        here, total = open_order_counts(user=user, market=market)
        switches = [(k.user_id is not None, k.mode) for k in kill_switches_active(user=user, market=market)]
        return PretradeSnapshot(limits_for(user=user, market=market), switches, here, total)
    rows, switches, here, total = [], [], 0, 0
    with pg_cursor() as cursor:  # server-bound: prepared after a few orders on a connection
        cursor.execute(_snapshot_sql(), {
            "u": user.pk, "m": market.pk, "open": [str(s) for s in Order.OPEN_STATUSES],
            "d_total": _default("max_open_orders"), "d_here": _default("max_open_orders_per_market"),
        })
        for kind, a, b, *rest in cursor.fetchall():
            if kind == "L":
                rows.append({"user_id": a, "market_id": b, **dict(zip(LIMIT_FIELDS, rest, strict=True))})
            elif kind == "K":
                switches.append((a is not None, rest[0]))
            else:
                total, here = int(a), int(b)
    switches.sort(key=lambda k: not k[0])
    return PretradeSnapshot(_resolve(rows, user.pk, market.pk), switches, here, total)


def utc_day_start(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def traded_notional_today_usdt(*, user: Any, now: dt.datetime | None = None) -> Decimal:
    """USDT value of the account's fills since 00:00 UTC (as maker or taker), each market's
    quote converted by :func:`trading.fees.usdt_value_of`; a quote with no known USDT
    value counts at 1:1 (conservative for the stablecoins it is used with)."""
    start = utc_day_start(now)
    rows = (
        Trade.objects.of_user(user.pk, since=start)
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
    counts = counters.counts_recall(user) or order_counts(user=user)
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
        "traded_notional_today_usdt": f"{traded_notional_today_usdt(user=user, now=now).normalize():f}",
    }


# --- market status (REST v1) ------------------------------------------------------------------

# Halt fields the engine's volatility-halt state adds to Market (the halts work): read when
# present, null until then. One place to rename them when that model lands.
def market_status(*, market: Market) -> dict[str, Any]:
    """``trading`` / ``halted`` / ``auction`` / ``cancel_only`` / ``break`` / ``closed``, with
    the volatility halt's band, reason and resume time (``trading.selectors.market_status``,
    the one home of the halt state; null when none) and the market's kill switch."""
    halt = trading_market_status(market)
    switch = next(iter(kill_switches_active(market=market)), None)
    if halt["status"] == "AUCTION_MATCH":
        state = "auction"
    elif halt["status"] == "HALT" or market.status == Market.Status.HALT:
        state = "halted"
    elif market.status == Market.Status.BREAK:
        state = "break"
    elif market.status == Market.Status.CANCEL_ONLY or (switch is not None and switch.mode == KillSwitch.Mode.CANCEL_ONLY):
        state = "cancel_only"
    elif not market_session_is_open(market=market):
        state = "closed"
    else:
        state = "trading"
    band = halt["band"] or {}
    return {
        "symbol": market.symbol,
        "status": state,
        "market_status": market.status,
        "halt": {
            "reason": halt["reason"],
            "until": halt["resumeAt"],
            "band_low": band.get("low"),
            "band_high": band.get("high"),
        },
        "kill_switch": None if switch is None else {"mode": switch.mode, "since": switch.engaged_at.isoformat()},
    }


def breaches_today(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Refusals per risk code since 00:00 UTC (cache counters, kept 8 days)."""
    return counters.breaches_read(day=utc_day_start(now).date().isoformat())


def largest_accounts_by_var(*, limit: int = 10, horizon_days: int = 1, confidence: Decimal = Decimal("0.99")) -> list[RiskFigure]:
    """The latest night's accounts with the largest VaR at (horizon, confidence)."""
    latest = RiskFigure.objects.filter(user__isnull=False).order_by("-as_of").values_list("as_of", flat=True).first()
    if latest is None:
        return []
    return list(
        RiskFigure.objects.filter(as_of=latest, user__isnull=False, horizon_days=horizon_days, confidence=confidence)
        .select_related("user").order_by("-var_usdt")[:limit]
    )


def markets_restricted() -> list[dict[str, Any]]:
    """Markets not trading normally now: halted, in a break, cancel-only, or under a kill switch."""
    switched = {k.market_id: k for k in KillSwitch.objects.filter(market__isnull=False, released_at__isnull=True)}
    out = []
    for market in Market.objects.filter(Q(pk__in=list(switched)) | ~Q(status=Market.Status.TRADING)).order_by("symbol"):
        out.append(market_status(market=market))
    return out
