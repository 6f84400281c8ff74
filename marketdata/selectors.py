"""Market data, computed on read from ``trading.Trade`` (see docs/marketdata.md).

Nothing is materialised: the trades table (indexed on ``(market, created_at)`` and
``(market, trade_id)``) is the single source of truth, so a candle or a ticker can never
disagree with the trades the engine committed, and no hook has to run inside the engine's
batch. Every query is bounded by a time window (at most ``limit`` candles, 24 hours for a
ticker).

* Candles: on PostgreSQL one ``GROUP BY date_bin(…)`` query (``time_bucket`` when the
  TimescaleDB extension is installed); on SQLite the same buckets in Python. Either way the
  result is gap-filled here: an interval without trades carries the previous close with zero
  volume, so charts never have holes.
* Tickers: rolling 24-hour open/high/low/close, change, volume, quote volume, count, VWAP.
* Last price, VWAP and TWAP over any window; Binance's ``avgPrice`` (5-minute VWAP).
* The book (depth, best bid/ask) comes from the engine's committed snapshot
  (:func:`trading.selectors.depth_snapshot`).
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from decimal import Decimal, localcontext

from django.db import connection
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from kk99.conf import kk99_setting
from marketdata.intervals import Interval
from marketdata.timescale import candle_view_for, timescale_enabled, timescale_ready
from trading.models import EngineState, Market, Trade
from trading.selectors import depth_from_database, depth_snapshot

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
PRECISE = 60  # Decimal context precision for averages


@dataclass(frozen=True, slots=True)
class Candle:
    open_time: dt.datetime
    close_time: dt.datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    open_time: dt.datetime
    close_time: dt.datetime
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    last: Decimal | None
    last_qty: Decimal
    prev_close: Decimal | None
    volume: Decimal
    quote_volume: Decimal
    count: int
    first_id: int
    last_id: int

    @property
    def change(self) -> Decimal:
        if self.open is None or self.last is None:
            return ZERO
        return self.last - self.open

    @property
    def change_percent(self) -> Decimal:
        if not self.open:
            return ZERO
        with localcontext() as ctx:
            ctx.prec = PRECISE
            return (self.change * 100 / self.open).quantize(Decimal("0.001"))

    @property
    def vwap(self) -> Decimal | None:
        if not self.volume:
            return self.last
        with localcontext() as ctx:
            ctx.prec = PRECISE
            return self.quote_volume / self.volume


# --- helpers ----------------------------------------------------------------------------


def _on_postgres() -> bool:
    return connection.vendor == "postgresql"


@functools.cache
def _timescale_installed(alias_key: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        return cursor.fetchone() is not None


def timescale_available() -> bool:
    """True when the TimescaleDB extension is installed in the current PostgreSQL database
    (checked once per database per process)."""
    if not _on_postgres():
        return False
    settings_dict = connection.settings_dict
    return _timescale_installed(f"{settings_dict.get('HOST')}:{settings_dict.get('PORT')}/{settings_dict.get('NAME')}")


def _trades(market: Market):
    return Trade.objects.filter(market_id=market.pk)


def price_before(*, market: Market, when: dt.datetime) -> Decimal | None:
    """The price of the last trade strictly before ``when`` (None before the first trade)."""
    return (
        _trades(market).filter(created_at__lt=when).order_by("-created_at", "-trade_id").values_list("price", flat=True).first()
    )


def last_price(*, market: Market) -> Decimal | None:
    """The last trade price (the engine's committed value, else the newest trade)."""
    value = EngineState.objects.filter(market_id=market.pk).values_list("last_price", flat=True).first()
    if value is not None:
        return value
    return _trades(market).order_by("-trade_id").values_list("price", flat=True).first()


# --- candles ----------------------------------------------------------------------------

_Agg = list  # [open, high, low, close, volume, quote_volume, count, taker_buy_volume, taker_buy_quote_volume]


def _bucket_sql(interval: Interval, *, timescale: bool | None = None, column: str = "created_at") -> tuple[str, list]:
    """The bucket expression: ``time_bucket`` on TimescaleDB, ``date_bin`` elsewhere — same
    origins, so the same buckets (tests/marketdata/test_timescale_candles.py runs both on a
    real TimescaleDB)."""
    if interval.is_month:
        return f"date_trunc('month', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'", []
    if timescale_available() if timescale is None else timescale:
        return f"time_bucket(%s::interval, {column}, origin => %s::timestamptz)", [interval.sql_interval, interval.origin]
    return f"date_bin(%s::interval, {column}, %s::timestamptz)", [interval.sql_interval, interval.origin]


def candle_aggregate_sql(interval: Interval, *, table: str | None = None, timescale: bool | None = None) -> tuple[str, list]:
    """The one candle query: (sql, leading params); the caller appends market id, start, end."""
    bucket, params = _bucket_sql(interval, timescale=timescale)
    table = table or Trade._meta.db_table
    sql = f"""
        SELECT {bucket} AS bucket,
               (array_agg(price ORDER BY trade_id))[1],
               max(price), min(price),
               (array_agg(price ORDER BY trade_id DESC))[1],
               sum(qty), sum(quote_qty), count(*),
               coalesce(sum(qty) FILTER (WHERE NOT is_buyer_maker), 0),
               coalesce(sum(quote_qty) FILTER (WHERE NOT is_buyer_maker), 0)
          FROM {table}
         WHERE market_id = %s AND created_at >= %s AND created_at < %s
         GROUP BY 1
    """
    return sql, params


def candle_rollup_sql(interval: Interval) -> tuple[str, list]:
    """The same candles from TimescaleDB's continuous aggregates (``KK99_TIMESCALEDB=1``): the
    coarsest 1m/1h/1d aggregate whose buckets nest in ``interval`` rolled up with the same
    bucket expression. Open/close follow the trade ids as in :func:`candle_aggregate_sql`, so
    both give identical rows (tests/marketdata/test_timescale_setup.py). Same parameters."""
    view = candle_view_for(interval.seconds)
    bucket, params = _bucket_sql(interval, timescale=True, column="bucket")
    sql = f"""
        SELECT {bucket} AS candle,
               first(open, first_trade_id), max(high), min(low), last(close, last_trade_id),
               sum(volume), sum(quote_volume), sum(trades)::bigint,
               coalesce(sum(taker_buy_volume), 0), coalesce(sum(taker_buy_quote_volume), 0)
          FROM {view.name}
         WHERE market_id = %s AND bucket >= %s AND bucket < %s
         GROUP BY 1
    """
    return sql, params


@functools.cache
def _timescale_candles_ready(alias_key: str) -> bool:
    ready = timescale_ready(connection)
    if not ready:
        logger.warning("KK99_TIMESCALEDB=1 but the candle aggregates are missing: reading trades (run manage.py timescale_setup)")
    return ready


def timescale_candles() -> bool:
    """Candles come from the continuous aggregates: the mode is on and its objects exist
    (checked once per database per process; a missing setup falls back to the trades and is
    reported by the database check ``marketdata.W001``)."""
    if not (_on_postgres() and timescale_enabled()):
        return False
    settings_dict = connection.settings_dict
    return _timescale_candles_ready(f"{settings_dict.get('HOST')}:{settings_dict.get('PORT')}/{settings_dict.get('NAME')}")


def _aggregate_sql(market: Market, interval: Interval, start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, _Agg]:
    sql, params = candle_rollup_sql(interval) if timescale_candles() else candle_aggregate_sql(interval)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, market.pk, start, end])
        rows = cursor.fetchall()
    return {row[0].astimezone(dt.UTC): list(row[1:]) for row in rows}


def _aggregate_python(market: Market, interval: Interval, start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, _Agg]:
    out: dict[dt.datetime, _Agg] = {}
    rows = (
        _trades(market)
        .filter(created_at__gte=start, created_at__lt=end)
        .order_by("trade_id")
        .values_list("created_at", "price", "qty", "quote_qty", "is_buyer_maker")
    )
    for created_at, price, qty, quote_qty, is_buyer_maker in rows.iterator(chunk_size=5000):
        key = interval.floor(created_at)
        agg = out.get(key)
        if agg is None:
            agg = out[key] = [price, price, price, price, ZERO, ZERO, 0, ZERO, ZERO]
        agg[1] = max(agg[1], price)
        agg[2] = min(agg[2], price)
        agg[3] = price
        agg[4] += qty
        agg[5] += quote_qty
        agg[6] += 1
        if not is_buyer_maker:  # the taker bought
            agg[7] += qty
            agg[8] += quote_qty
    return out


def candles_aggregate(*, market: Market, interval: Interval, start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, _Agg]:
    """Buckets that have trades in ``[start, end)``: open time → aggregate. SQL on
    PostgreSQL, Python elsewhere; both give identical results."""
    if _on_postgres():
        return _aggregate_sql(market, interval, start, end)
    return _aggregate_python(market, interval, start, end)


def candles_for_market(
    *,
    market: Market,
    interval: Interval,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: int = 500,
    now: dt.datetime | None = None,
) -> list[Candle]:
    """Gap-free OHLCV candles, oldest first, at most ``limit``.

    With ``start``: from the bucket containing ``start`` (or the market's first trade, if
    later) forward. Without it: the ``limit`` buckets ending with the one containing ``end``
    (default: now). Never past the current bucket; never before the first trade."""
    now = now or timezone.now()
    current = interval.floor(now)
    limit = max(1, int(limit))
    if start is not None:
        first = interval.floor(start)
        last_allowed = min(interval.floor(end), current) if end is not None else current
        if first > last_allowed:
            return []
        prev_close = price_before(market=market, when=first)
        if prev_close is None:
            first_trade_at = (
                _trades(market)
                .filter(created_at__gte=first, created_at__lt=interval.add(last_allowed))
                .order_by("created_at", "trade_id")
                .values_list("created_at", flat=True)
                .first()
            )
            if first_trade_at is None:
                return []
            first = interval.floor(first_trade_at)
        last = min(last_allowed, interval.add(first, limit - 1))
    else:
        last = min(interval.floor(end), current) if end is not None else current
        first = interval.add(last, -(limit - 1))
        prev_close = price_before(market=market, when=first)

    buckets = candles_aggregate(market=market, interval=interval, start=first, end=interval.add(last))
    candles: list[Candle] = []
    at = first
    while at <= last:
        agg = buckets.get(at)
        if agg is not None:
            candle = Candle(at, interval.close_time(at), agg[0], agg[1], agg[2], agg[3], agg[4], agg[5], int(agg[6]), agg[7], agg[8])
            prev_close = agg[3]
        elif prev_close is not None:
            p = prev_close
            candle = Candle(at, interval.close_time(at), p, p, p, p, ZERO, ZERO, 0, ZERO, ZERO)
        else:
            candle = None  # before the market's first trade: no candle at all
        if candle is not None:
            candles.append(candle)
        at = interval.add(at)
    return candles


# --- tickers, averages ------------------------------------------------------------------

TICKER_WINDOW = dt.timedelta(hours=24)


def ticker_for_market(*, market: Market, now: dt.datetime | None = None, window: dt.timedelta = TICKER_WINDOW) -> Ticker:
    """Rolling-window statistics (Binance ``ticker/24hr``). With no trade in the window the
    prices are the previous close (or None before the first trade ever) and volumes zero."""
    now = now or timezone.now()
    start = now - window
    in_window = _trades(market).filter(created_at__gte=start, created_at__lte=now)
    agg = in_window.aggregate(
        high=Max("price"), low=Min("price"), volume=Sum("qty"), quote_volume=Sum("quote_qty"), count=Count("pk"), first_id=Min("trade_id"), last_id=Max("trade_id")
    )
    prev_close = price_before(market=market, when=start)
    if not agg["count"]:
        return Ticker(market.symbol, start, now, prev_close, prev_close, prev_close, prev_close, ZERO, prev_close, ZERO, ZERO, 0, -1, -1)
    open_price = _trades(market).filter(trade_id=agg["first_id"]).values_list("price", flat=True).first()
    last_price_, last_qty = _trades(market).filter(trade_id=agg["last_id"]).values_list("price", "qty").first()
    return Ticker(
        market.symbol, start, now, open_price, agg["high"], agg["low"], last_price_, last_qty, prev_close,
        agg["volume"] or ZERO, agg["quote_volume"] or ZERO, agg["count"], agg["first_id"], agg["last_id"],
    )


def tickers(*, markets, now: dt.datetime | None = None) -> list[Ticker]:
    now = now or timezone.now()
    return [ticker_for_market(market=m, now=now) for m in markets]


def vwap(*, market: Market, start: dt.datetime, end: dt.datetime) -> Decimal | None:
    """Volume-weighted average price of the trades in ``[start, end]`` (None without trades)."""
    agg = _trades(market).filter(created_at__gte=start, created_at__lte=end).aggregate(q=Sum("qty"), v=Sum("quote_qty"))
    if not agg["q"]:
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISE
        return agg["v"] / agg["q"]


def twap(*, market: Market, start: dt.datetime, end: dt.datetime) -> Decimal | None:
    """Time-weighted average of the last-trade price over ``[start, end]``: the price is a
    step function (it holds until the next trade), integrated over time. Starts from the
    price before ``start`` when there is one, else from the first trade in the window.
    None when there is no price at all."""
    if end <= start:
        return None
    price = price_before(market=market, when=start)
    at = start
    rows = _trades(market).filter(created_at__gte=start, created_at__lte=end).order_by("trade_id").values_list("created_at", "price")
    weighted = ZERO
    total = dt.timedelta(0)
    with localcontext() as ctx:
        ctx.prec = PRECISE
        for created_at, trade_price in rows.iterator(chunk_size=5000):
            if price is not None:
                span = created_at - at
                weighted += price * Decimal(span // dt.timedelta(microseconds=1))
                total += span
            price, at = trade_price, max(at, created_at)
        if price is None:
            return None
        span = end - at
        weighted += price * Decimal(span // dt.timedelta(microseconds=1))
        total += span
        micros = total // dt.timedelta(microseconds=1)
        if micros <= 0:
            return price
        return weighted / Decimal(micros)


AVG_PRICE_MINUTES = 5


def avg_price(*, market: Market, minutes: int = AVG_PRICE_MINUTES, now: dt.datetime | None = None) -> tuple[Decimal | None, dt.datetime | None]:
    """Binance ``avgPrice``: the VWAP of the last ``minutes`` minutes, else the last price;
    with the time of the last trade considered."""
    now = now or timezone.now()
    price = vwap(market=market, start=now - dt.timedelta(minutes=minutes), end=now)
    last = _trades(market).order_by("-trade_id").values_list("created_at", "price").first()
    if price is None:
        price = last[1] if last else None
    return price, (last[0] if last else None)


# --- public trades ----------------------------------------------------------------------


def trades_from(*, market: Market, from_id: int, limit: int) -> list[Trade]:
    """Trades with ``trade_id >= from_id``, ascending (Binance ``historicalTrades``)."""
    return list(_trades(market).filter(trade_id__gte=from_id).order_by("trade_id")[:limit])


@dataclass(frozen=True, slots=True)
class AggTrade:
    agg_id: int
    price: Decimal
    qty: Decimal
    first_id: int
    last_id: int
    time: dt.datetime
    is_buyer_maker: bool


def agg_trades(
    *, market: Market, from_id: int | None = None, start: dt.datetime | None = None, end: dt.datetime | None = None, limit: int = 500
) -> list[AggTrade]:
    """Binance ``aggTrades``: consecutive trades of the same taker order at the same price
    merged into one; the aggregate's id is its first trade id. Oldest first."""
    qs = _trades(market)
    if from_id is not None:
        qs = qs.filter(trade_id__gte=from_id).order_by("trade_id")
    elif start is not None or end is not None:
        if start is not None:
            qs = qs.filter(created_at__gte=start)
        if end is not None:
            qs = qs.filter(created_at__lte=end)
        qs = qs.order_by("trade_id")
    else:
        qs = qs.order_by("-trade_id")
    # Fetch a few more trades than aggregates wanted (aggregation only shrinks the list).
    rows = list(qs.values_list("trade_id", "taker_order_id", "price", "qty", "created_at", "is_buyer_maker")[: limit * 4])
    if from_id is None and start is None and end is None:
        rows.reverse()
    out: list[AggTrade] = []
    for trade_id, taker, price, qty, created_at, ibm in rows:
        last = out[-1] if out else None
        if last is not None and last[1] == taker and last[2] == price and last[4] == trade_id - 1:
            last[3] += qty
            last[4] = trade_id
        else:
            out.append([trade_id, taker, price, qty, trade_id, created_at, ibm])
    aggs = [AggTrade(a[0], a[2], a[3], a[0], a[4], a[5], a[6]) for a in out]
    if from_id is None and start is None and end is None:
        return aggs[-limit:]
    return aggs[:limit]


# --- the book ---------------------------------------------------------------------------


def book_depth(*, market: Market, limit: int = 100) -> dict:
    """``{"last_update_id", "bids", "asks"}`` (price/qty strings, best first), ``limit`` levels a side.

    The engine's committed snapshot (its top ENGINE_DEPTH_LEVELS levels, cached after each
    batch commit) when it covers ``limit``; otherwise the resting orders aggregated in the
    database, read together with the EngineState sequence."""
    if limit <= kk99_setting("ENGINE_DEPTH_LEVELS"):
        snap = depth_snapshot(market=market)
    else:
        snap = depth_from_database(market=market, levels=limit)
    return {"last_update_id": snap.get("last_update_id", 0), "bids": snap.get("bids", [])[:limit], "asks": snap.get("asks", [])[:limit]}


def book_ticker(*, market: Market) -> dict:
    """Best bid and ask: ``{"bid_price", "bid_qty", "ask_price", "ask_qty"}`` (strings or None)."""
    snap = book_depth(market=market, limit=1)
    bid = snap["bids"][0] if snap["bids"] else (None, None)
    ask = snap["asks"][0] if snap["asks"] else (None, None)
    return {"bid_price": bid[0], "bid_qty": bid[1], "ask_price": ask[0], "ask_qty": ask[1], "last_update_id": snap["last_update_id"]}


