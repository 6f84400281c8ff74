"""Mark price: the manipulation-resistant reference every margin and liquidation decision uses.

Never a single last trade (docs/margin.md "Mark price, liquidation, insurance fund"; PITFALLS
"Mark price ≠ last trade"). The mark of a market is recomputed from its previous mark
``M₀`` (the anchor) and its trades between two DIFFERENT users (self-trades excluded) over the
last ``MARK_WINDOW_SECONDS`` ``W``:

1. every trade price is clamped to ``[M₀ × (1 − c), M₀ × (1 + c)]`` (``c`` =
   ``MARK_TRADE_CAP``): one print far from the mark counts as a print at the cap;
2. the clamped prices are averaged over time (a price holds until the next trade; the price
   in force when the window opens counts from the window's start; no trade at all → ``M₀``);
3. when the book has both sides, the average is clamped to ``mid × (1 ± MARK_MID_BAND)``;
4. the move from ``M₀`` is clamped to ``± c × M₀`` and rounded to the tick TOWARD ``M₀``
   (never beyond the cap, never beyond the evidence).

So one recomputation moves the mark by at most ``c × M₀``, however far a trade printed, and a
single trade in force for ``t`` seconds of the window shifts it, against the mark without
that trade, by at most ``2c × M₀ × t / W`` (it replaces a clamped price by another one).
A genuine move of the market is followed at up to ``c`` per recomputation (the engine hook and
the beat task recompute after every batch that traded / every few seconds).

The mark is state (its previous value anchors the clamps), so unlike the rest of
:mod:`marketdata` it has a row per market: :class:`marketdata.models.MarkPrice`, written only by
:func:`mark_update`. :func:`mark_price` reads it (and computes the first one).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from kk99.conf import kk99_setting
from kk99.db import pg_cursor
from marketdata.models import MarkPrice
from trading.models import Market, Trade
from trading.selectors import depth_snapshot

ZERO = Decimal(0)
ONE = Decimal(1)
PRECISE = 60
UNBOUNDED = Decimal("1e30")  # no clamp: the first mark of a market


@dataclass(frozen=True, slots=True)
class MarkParams:
    window_seconds: int
    trade_cap: Decimal  # c: max relative distance of a counted print from the anchor, and max move
    mid_band: Decimal | None  # the average is kept within mid × (1 ± band); None = no mid bound

    @classmethod
    def from_settings(cls) -> MarkParams:
        band = kk99_setting("MARK_MID_BAND")
        return cls(
            window_seconds=int(kk99_setting("MARK_WINDOW_SECONDS")),
            trade_cap=Decimal(kk99_setting("MARK_TRADE_CAP")),
            mid_band=None if band in (None, "") else Decimal(band),
        )


def _clamp(x: Decimal, low: Decimal, high: Decimal) -> Decimal:
    return low if x < low else high if x > high else x


def clamped_time_average(points: Sequence[tuple[dt.datetime, Decimal]], *, start: dt.datetime, now: dt.datetime,
                         before: Decimal | None, low: Decimal, high: Decimal) -> Decimal | None:
    """Time-weighted average over ``[start, now]`` of the step function of ``points``
    ((time, price) ascending, inside the window), each price clamped to ``[low, high]``;
    ``before`` is the price in force at ``start``. None without any price."""
    prices = ([(start, before)] if before is not None else []) + [(max(t, start), p) for t, p in points]
    if not prices:
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISE
        weighted = ZERO
        total = 0
        for (at, price), (until, _) in zip(prices, prices[1:] + [(now, None)]):
            micros = max(0, (until - at) // dt.timedelta(microseconds=1))
            weighted += _clamp(price, low, high) * micros
            total += micros
        if total == 0:  # everything at one instant: the mean of the clamped prices
            return sum((_clamp(p, low, high) for _, p in prices), ZERO) / len(prices)
        return weighted / total


def mark_compute(*, previous: Decimal | None, points: Sequence[tuple[dt.datetime, Decimal]] = (), before: Decimal | None = None,
                 now: dt.datetime, mid: Decimal | None, tick: Decimal, params: MarkParams,
                 average: Callable[[Decimal, Decimal], Decimal | None] | None = None) -> Decimal | None:
    """The new mark (pure; see the module docstring for the rule). ``previous`` None (the
    first mark of a market): the unclamped time average, rounded half-even to the tick.

    The window's prices are ``points`` and ``before`` (see :func:`clamped_time_average`), or
    ``average(low, high)`` computes that same average elsewhere (:func:`_window_average`
    sums it inside PostgreSQL instead of loading the window's trades)."""
    start = now - dt.timedelta(seconds=params.window_seconds)
    if average is None:
        def average(low: Decimal, high: Decimal) -> Decimal | None:
            return clamped_time_average(points, start=start, now=now, before=before, low=low, high=high)
    if previous is None:
        avg = average(ZERO, UNBOUNDED)
        if avg is None:
            return None
        if mid is not None and params.mid_band is not None:
            avg = _clamp(avg, mid * (ONE - params.mid_band), mid * (ONE + params.mid_band))
        return max(tick, (avg / tick).to_integral_value(ROUND_HALF_EVEN) * tick)
    cap = previous * params.trade_cap
    low, high = previous - cap, previous + cap
    avg = average(low, high)
    if avg is None:
        avg = previous
    if mid is not None and params.mid_band is not None:
        avg = _clamp(avg, mid * (ONE - params.mid_band), mid * (ONE + params.mid_band))
    with localcontext() as ctx:
        ctx.prec = PRECISE
        move = _clamp(avg - previous, -cap, cap)
        ticks = (move / tick).to_integral_value(ROUND_DOWN)  # toward the anchor
        new = previous + ticks * tick
    return new if new > 0 else previous


# --- reading the market -------------------------------------------------------------------


def _book_mid(market: Market) -> Decimal | None:
    try:
        snap = depth_snapshot(market=market)
    except Exception:  # a cache outage: no mid bound this time
        return None
    bids, asks = snap.get("bids") or [], snap.get("asks") or []
    if not bids or not asks:
        return None
    return (Decimal(bids[0][0]) + Decimal(asks[0][0])) / 2


def _window_trades(market: Market, *, start: dt.datetime, now: dt.datetime) -> tuple[list, Decimal | None]:
    trades = Trade.objects.filter(market=market).exclude(maker_user_id=F("taker_user_id"))
    points = list(trades.filter(created_at__gte=start, created_at__lte=now).order_by("created_at", "trade_id").values_list("created_at", "price"))
    before = trades.filter(created_at__lt=start).order_by("-created_at", "-trade_id").values_list("price", flat=True).first()
    return points, before


# The clamped time average of clamped_time_average, summed by PostgreSQL: the price in force at
# ``start`` (the last counted trade before it) holds from ``start``, every counted trade of
# the window from its time, each until the next step (or ``now``); weights are whole
# microseconds, as in Python. Only the exact sums come back; the division happens in Python
# with the same precision, so both paths give the same Decimal. One row, however many trades
# the window holds (the engine's hook recomputes after traded batches, up to 4 times a second).
_WINDOW_SUMS_SQL = """
WITH steps AS (
    (SELECT %(start)s::timestamptz AS at, price, 0 AS k, 0::bigint AS trade_id
       FROM trading_trade
      WHERE market_id = %(market)s AND maker_user_id <> taker_user_id AND created_at < %(start)s
      ORDER BY created_at DESC, trade_id DESC LIMIT 1)
    UNION ALL
    SELECT created_at, price, 1, trade_id
      FROM trading_trade
     WHERE market_id = %(market)s AND maker_user_id <> taker_user_id AND created_at >= %(start)s AND created_at <= %(now)s
), weighted AS (
    SELECT LEAST(GREATEST(price, %(low)s), %(high)s) AS p,
           GREATEST(0, EXTRACT(EPOCH FROM COALESCE(LEAD(at) OVER (ORDER BY at, k, trade_id), %(now)s::timestamptz) - at) * 1000000) AS micros
      FROM steps
)
SELECT COUNT(*), COALESCE(SUM(p * micros), 0)::text, COALESCE(SUM(micros), 0)::text, COALESCE(SUM(p), 0)::text FROM weighted
"""


def _window_average(market: Market, *, start: dt.datetime, now: dt.datetime, low: Decimal, high: Decimal) -> Decimal | None:
    """:func:`clamped_time_average` of the market's counted trades in ``[start, now]``: summed
    in PostgreSQL; elsewhere (the embedded SQLite demo) over the loaded trades."""
    if connection.vendor != "postgresql":
        points, before = _window_trades(market, start=start, now=now)
        return clamped_time_average(points, start=start, now=now, before=before, low=low, high=high)
    with pg_cursor() as cursor:
        cursor.execute(_WINDOW_SUMS_SQL, {"market": market.pk, "start": start, "now": now, "low": low, "high": high})
        count, weighted, total, plain = cursor.fetchone()
    if not count:
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISE
        if Decimal(total) == 0:  # everything at one instant: the mean of the clamped prices
            return Decimal(plain) / count
        return Decimal(weighted) / Decimal(total)


def mark_update(*, market: Market, now: dt.datetime | None = None, params: MarkParams | None = None) -> Decimal | None:
    """Recompute and store the mark of ``market`` (row-locked: concurrent updaters serialise).
    Returns the new mark (None while the market has neither trades nor a reference price)."""
    return mark_recompute(market=market, now=now, params=params)[1]


def mark_recompute(*, market: Market, now: dt.datetime | None = None, params: MarkParams | None = None) -> tuple[Decimal | None, Decimal | None]:
    """:func:`mark_update` returning ``(stored mark before, new mark)``: the stored one is
    read under the same row lock (None when the market had no mark row yet), so a caller
    that asks "did the mark move?" needs no second read."""
    now = now or timezone.now()
    params = params or MarkParams.from_settings()
    with transaction.atomic():
        row = MarkPrice.objects.select_for_update().filter(market=market).first()
        stored = row.price if row is not None else None
        previous = stored if row is not None else market.reference_price
        start = now - dt.timedelta(seconds=params.window_seconds)
        new = mark_compute(previous=previous, now=now, mid=_book_mid(market), tick=market.tick_size, params=params,
                           average=lambda low, high: _window_average(market, start=start, now=now, low=low, high=high))
        if new is None:
            return stored, None
        if row is None:
            # No row to lock yet: a concurrent first computation (an API read and the engine's
            # hook) may insert it too — ON CONFLICT DO NOTHING instead of a duplicate-key 500.
            MarkPrice.objects.bulk_create([MarkPrice(market=market, price=new, updated_at=now)], ignore_conflicts=True)
        elif row.price != new or row.updated_at < now:
            MarkPrice.objects.filter(pk=row.pk).update(price=new, updated_at=now)
    return stored, new


def mark_set(*, market: Market, price: Decimal, now: dt.datetime | None = None) -> Decimal:
    """Set the mark directly, tick-rounded (operator override and the shock simulation's
    scripted index path). Documented as an operator action; not used by the hook."""
    tick = market.tick_size
    price = max(tick, (price / tick).to_integral_value(ROUND_HALF_EVEN) * tick)
    MarkPrice.objects.update_or_create(market=market, defaults={"price": price, "updated_at": now or timezone.now()})
    return price


def mark_price(market: Market | str) -> Decimal | None:
    """The current mark of ``market`` (a Market or a symbol): the stored mark; the first call
    for a market computes it. None when the market has no price at all."""
    if isinstance(market, str):
        market = Market.objects.get(symbol=market.upper())
    price = MarkPrice.objects.filter(market=market).values_list("price", flat=True).first()
    if price is None:
        price = mark_update(market=market)
    return price
