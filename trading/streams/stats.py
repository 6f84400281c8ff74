"""24h tickers and candles computed from committed trades.

Used for the chart's history endpoint, the initial state of a market feed (its live candle
and 24h ticker) and the markets list. Bucket boundaries come from ``marketdata.intervals`` so
they match the REST klines. (When marketdata grows its own candle tables, these readers
should become thin calls to its selectors.)
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from marketdata.intervals import Interval, interval_get, to_ms
from trading.models import EngineState, Market, Trade

ZERO = Decimal(0)
DAY = dt.timedelta(hours=24)
MAX_TRADES_SCANNED = 200_000


@dataclass
class Candle:
    open_time: dt.datetime
    interval: Interval
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    taker_buy_volume: Decimal = ZERO
    taker_buy_quote_volume: Decimal = ZERO
    trades: int = 0
    first_trade_id: int = -1
    last_trade_id: int = -1

    @property
    def close_time(self) -> dt.datetime:
        return self.interval.close_time(self.open_time)

    def add(self, *, price: Decimal, qty: Decimal, quote: Decimal, trade_id: int, taker_buys: bool) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += qty
        self.quote_volume += quote
        if taker_buys:
            self.taker_buy_volume += qty
            self.taker_buy_quote_volume += quote
        self.trades += 1
        if self.first_trade_id < 0:
            self.first_trade_id = trade_id
        self.last_trade_id = trade_id

    def chart_row(self) -> dict:
        """lightweight-charts' shape: seconds since the epoch, floats for plotting only."""
        return {
            "time": to_ms(self.open_time) // 1000,
            "open": float(self.open), "high": float(self.high), "low": float(self.low), "close": float(self.close),
            "volume": float(self.volume),
        }


def candle_new(*, interval: Interval, when: dt.datetime, price: Decimal) -> Candle:
    return Candle(open_time=interval.floor(when), interval=interval, open=price, high=price, low=price, close=price)


def candles(*, market: Market, interval: str, limit: int = 500, end: dt.datetime | None = None) -> list[Candle]:
    """The last ``limit`` candles of ``interval`` up to ``end`` (now), oldest first; buckets
    without trades are skipped (as Binance does)."""
    iv = interval_get(interval)
    if iv is None or iv.is_month:
        raise ValueError(f"unsupported interval {interval!r}")
    end = end or timezone.now()
    start = iv.add(iv.floor(end), -(max(1, min(limit, 1000)) - 1))
    rows = (
        Trade.objects.filter(market=market, created_at__gte=start, created_at__lte=end)
        .order_by("trade_id")
        .values_list("created_at", "price", "qty", "quote_qty", "trade_id", "is_buyer_maker")[:MAX_TRADES_SCANNED]
    )
    out: list[Candle] = []
    for when, price, qty, quote, trade_id, buyer_maker in rows.iterator(chunk_size=5000):
        if not out or iv.floor(when) != out[-1].open_time:
            out.append(candle_new(interval=iv, when=when, price=price))
        out[-1].add(price=price, qty=qty, quote=quote, trade_id=trade_id, taker_buys=not buyer_maker)
    return out


def candle_current(*, market: Market, interval: str, now: dt.datetime | None = None) -> Candle | None:
    """The open candle of ``interval`` (None when it has no trade yet)."""
    iv = interval_get(interval)
    now = now or timezone.now()
    found = candles(market=market, interval=interval, limit=1, end=now)
    return found[-1] if found and found[-1].open_time == iv.floor(now) else None


@dataclass
class Ticker:
    symbol: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    count: int
    first_id: int
    last_id: int
    open_time: dt.datetime
    close_time: dt.datetime
    last_qty: Decimal = ZERO
    extra: dict = field(default_factory=dict)

    @property
    def change(self) -> Decimal:
        return self.close - self.open

    @property
    def change_pct(self) -> Decimal:
        if not self.open:
            return ZERO
        return (self.change / self.open * 100).quantize(Decimal("0.01"))

    @property
    def weighted_avg(self) -> Decimal:
        return (self.quote_volume / self.volume) if self.volume else self.close


def ticker_24h(*, market: Market, now: dt.datetime | None = None) -> Ticker:
    """Rolling 24h statistics of ``market`` from its trades. With no trade in the window the
    price fields are the last price ever (or the reference price) and volumes are zero."""
    now = now or timezone.now()
    since = now - DAY
    window = Trade.objects.filter(market=market, created_at__gte=since, created_at__lte=now)
    agg = window.aggregate(high=Max("price"), low=Min("price"), volume=Sum("qty"), quote=Sum("quote_qty"), count=Count("id"), first=Min("trade_id"), last=Max("trade_id"))
    if agg["count"]:
        first = window.order_by("trade_id").values_list("price", flat=True).first()
        last_price, last_qty = window.order_by("-trade_id").values_list("price", "qty").first()
        return Ticker(
            symbol=market.symbol, open=first, high=agg["high"], low=agg["low"], close=last_price, volume=agg["volume"],
            quote_volume=agg["quote"], count=agg["count"], first_id=agg["first"], last_id=agg["last"], open_time=since, close_time=now, last_qty=last_qty,
        )
    last = EngineState.objects.filter(market=market).values_list("last_price", flat=True).first()
    price = last if last is not None else (market.reference_price or ZERO)
    return Ticker(symbol=market.symbol, open=price, high=price, low=price, close=price, volume=ZERO, quote_volume=ZERO, count=0, first_id=-1, last_id=-1, open_time=since, close_time=now)
