"""Reads of the quant studio: the exchange's candles as ``Bars``, and backtest runs."""
from __future__ import annotations

import numpy as np
from django.db.models import QuerySet

from marketdata.intervals import interval_get, to_ms
from marketdata.selectors import candles_for_market
from quant.bars import Bars
from quant.errors import QuantError, QuantErrorCode
from quant.models import BacktestRun
from trading.models import Market

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
    f = lambda col: np.asarray([float(v) for v in col], dtype=np.float64)  # noqa: E731
    return Bars.from_arrays(time=np.asarray(cols[0], dtype=np.int64), open=f(cols[1]), high=f(cols[2]), low=f(cols[3]),
                            close=f(cols[4]), volume=f(cols[5]))


def runs_for_user(*, user) -> QuerySet[BacktestRun]:
    return BacktestRun.objects.filter(user=user).order_by("-created_at")


def run_for_user(*, user, run_id: int) -> BacktestRun | None:
    return BacktestRun.objects.filter(user=user, pk=run_id).first()
