"""Writes of the quant studio: create a backtest run (the page). The run's work is in
quant/jobs.py, which the task calls (kept apart so tasks and services import one way)."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from marketdata.intervals import interval_get
from quant.backtest import Costs, OrderRules
from quant.bars import bars_from_csv
from quant.errors import QuantError, QuantErrorCode
from quant.models import BacktestRun
from quant.selectors import market_grid
from quant.strategies import strategy_build
from quant.tasks import backtest_run_task

MAX_REPLAY_BARS = 20_000


def backtest_run_create(*, user, strategy: str, params: dict[str, Any], symbol: str = "", interval: str = "1h",
                        bars: int = 1000, engine: str = BacktestRun.Engine.VECTORISED, fee: float = 0.001,
                        stop_loss: float | None = None, csv_name: str = "", csv_data: bytes | None = None) -> BacktestRun:
    """Validate everything that can be validated now (4xx on bad input, nothing saved), save
    the run and queue its task after commit."""
    built = strategy_build(strategy, params)  # raises QuantError on a bad name/parameter
    Costs(fee=fee)
    OrderRules(stop_loss=stop_loss)
    if engine not in BacktestRun.Engine.values:
        raise QuantError(QuantErrorCode.BAD_PARAMETER, "unknown engine", param="engine")
    if csv_data is not None:
        bars_from_csv(csv_data)
    elif not symbol:
        raise QuantError(QuantErrorCode.BAD_PARAMETER, "pick a market or upload a CSV file", param="symbol")
    else:
        market_grid(symbol=symbol)  # raises for an unknown market
        if interval_get(interval) is None:
            raise QuantError(QuantErrorCode.BAD_PARAMETER, f"unknown interval {interval!r}", param="interval")
    if not 2 <= bars <= 100_000 or (engine == BacktestRun.Engine.REPLAY and bars > MAX_REPLAY_BARS):
        raise QuantError(QuantErrorCode.BAD_PARAMETER, "bars out of range", param="bars")
    with transaction.atomic():
        run = BacktestRun.objects.create(
            user=user, strategy=strategy, params=built.params, symbol=symbol.upper(), interval=interval, bars=bars,
            engine=engine, fee=fee, stop_loss=stop_loss, csv_name=csv_name[:120], csv_data=csv_data,
        )
        transaction.on_commit(lambda: backtest_run_task.delay(run.pk))
    return run
