"""Reads of the quant studio: the exchange's candles as ``Bars``, and backtest runs."""
from __future__ import annotations

import numpy as np
from django.db.models import QuerySet

from marketdata.intervals import from_ms, interval_get, to_ms
from marketdata.selectors import candles_for_market
from quant.bars import Bars
from quant.errors import QuantError, QuantErrorCode
from quant.models import BacktestRun
from trading.models import Market, Trade

MAX_BARS = 100_000


def bars_for_market(*, symbol: str, interval: str, limit: int = 1000) -> Bars:
    """The market's gap-filled candles (oldest first) as arrays: the last ``limit`` buckets."""
    market = Market.objects.filter(symbol=symbol.upper()).first()
    if market is None:
        raise QuantError(QuantErrorCode.BAD_PARAMETER, f"no market {symbol!r}", param="symbol")
    iv = interval_get(interval)
    if iv is None:
        raise QuantError(QuantErrorCode.BAD_PARAMETER, f"unknown interval {interval!r}", param="interval")
    candles = candles_for_market(market=market, interval=iv, limit=max(2, min(int(limit), MAX_BARS)))
    if len(candles) < 2:
        raise QuantError(QuantErrorCode.NOT_ENOUGH_DATA, f"{market.symbol} has fewer than two {interval} candles")
    cols = list(zip(*((to_ms(c.open_time), c.open, c.high, c.low, c.close, c.volume) for c in candles)))
    f = lambda col: np.asarray([float(v) for v in col], dtype=np.float64)
    return Bars.from_arrays(time=np.asarray(cols[0], dtype=np.int64), open=f(cols[1]), high=f(cols[2]), low=f(cols[3]),
                            close=f(cols[4]), volume=f(cols[5]))


def runs_for_user(*, user) -> QuerySet[BacktestRun]:
    return BacktestRun.objects.filter(user=user).order_by("-created_at")


def run_for_user(*, user, run_id: int) -> BacktestRun | None:
    return BacktestRun.objects.filter(user=user, pk=run_id).first()


def flow_for_market(*, symbol: str, bars: Bars, interval: str) -> list[tuple[int, str, float, float]]:
    """The market's recorded taker flow over ``bars`` for the replay engine: one
    ``(bar index, taker side, price, qty)`` per trade, in trade order."""
    market = Market.objects.filter(symbol=symbol.upper()).first()
    iv = interval_get(interval)
    if market is None or iv is None or not len(bars):
        raise QuantError(QuantErrorCode.BAD_PARAMETER, "unknown market or interval", param="symbol")
    start = from_ms(int(bars.time[0]))
    end = iv.add(from_ms(int(bars.time[-1])))
    rows = (Trade.objects.filter(market_id=market.pk, created_at__gte=start, created_at__lt=end)
            .order_by("trade_id").values_list("created_at", "price", "qty", "is_buyer_maker"))
    times = bars.time
    out = []
    for created_at, price, qty, buyer_maker in rows.iterator(chunk_size=5000):
        i = int(np.searchsorted(times, to_ms(iv.floor(created_at)), side="right")) - 1
        if i >= 0:
            out.append((i, "SELL" if buyer_maker else "BUY", float(price), float(qty)))
    return out


def market_grid(*, symbol: str) -> tuple[float, float]:
    """(tick size, step size) of a market, for the replay engine's integer ticks and lots."""
    row = Market.objects.filter(symbol=symbol.upper()).values_list("tick_size", "step_size").first()
    if row is None:
        raise QuantError(QuantErrorCode.BAD_PARAMETER, f"no market {symbol!r}", param="symbol")
    return float(row[0]), float(row[1])
