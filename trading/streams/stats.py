"""The live feed's view of tickers and candles: mutable copies that the market feed updates
trade by trade.

Nothing is computed from the database here: the starting values come from
:mod:`marketdata.selectors` (``ticker_for_market``, ``candles_for_market``), the one place
where tickers and candles are computed, so the pages, the WebSocket feed and ``/api/v3``
always agree. Bucket boundaries come from ``marketdata.intervals``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from marketdata import selectors as md
from marketdata.intervals import Interval, interval_get, to_ms
from trading.models import Market

ZERO = Decimal(0)
DAY = dt.timedelta(hours=24)


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


def _live(c: md.Candle, iv: Interval) -> Candle:
    return Candle(
        open_time=c.open_time, interval=iv, open=c.open, high=c.high, low=c.low, close=c.close, volume=c.volume,
        quote_volume=c.quote_volume, taker_buy_volume=c.taker_buy_volume, taker_buy_quote_volume=c.taker_buy_quote_volume, trades=c.trades,
    )


def candles(*, market: Market, interval: str, limit: int = 500, end: dt.datetime | None = None, now: dt.datetime | None = None) -> list[Candle]:
    """The last ``limit`` candles of ``interval`` up to ``end`` (default: now), oldest first
    (marketdata's gap-free candles); never past the bucket of ``now`` (default: the clock), so
    an ``end`` in the future adds no empty future candle."""
    iv = interval_get(interval)
    if iv is None or iv.is_month:
        raise ValueError(f"unsupported interval {interval!r}")
    rows = md.candles_for_market(market=market, interval=iv, end=end, limit=max(1, min(limit, 1000)), now=now)
    return [_live(c, iv) for c in rows]


def candle_current(*, market: Market, interval: str, now: dt.datetime | None = None) -> Candle | None:
    """The open candle of ``interval`` (None when it has no trade yet)."""
    iv = interval_get(interval)
    now = now or timezone.now()
    found = candles(market=market, interval=interval, limit=1, end=now, now=now)
    return found[-1] if found and found[-1].open_time == iv.floor(now) and found[-1].trades else None


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
    """Rolling 24h statistics of ``market`` (``marketdata.selectors.ticker_for_market``). With
    no trade in the window the price fields are the last price before it (or the market's
    reference price before the first trade) and volumes are zero."""
    t = md.ticker_for_market(market=market, now=now or timezone.now(), window=DAY)
    if t.count:
        return Ticker(
            symbol=t.symbol, open=t.open, high=t.high, low=t.low, close=t.last, volume=t.volume, quote_volume=t.quote_volume,
            count=t.count, first_id=t.first_id, last_id=t.last_id, open_time=t.open_time, close_time=t.close_time, last_qty=t.last_qty,
        )
    price = t.prev_close if t.prev_close is not None else (market.reference_price or ZERO)
    return Ticker(
        symbol=t.symbol, open=price, high=price, low=price, close=price, volume=ZERO, quote_volume=ZERO, count=0,
        first_id=-1, last_id=-1, open_time=t.open_time, close_time=t.close_time,
    )
