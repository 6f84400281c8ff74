"""The work of one backtest run (the Celery task's body): load bars, run the engine, store
thinned equity and metrics, with progress on the row. Writes only its own run row."""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np
from django.db.models import Q
from django.utils import timezone

from kk99.errors import KK99Error
from quant.backtest import Costs, OrderRules, run_backtest
from quant.bars import Bars, bars_from_csv
from quant.models import BacktestRun
from quant.replay import Venue, run_replay
from quant.selectors import bars_for_market, flow_for_market, market_grid
from quant.strategies import strategy_build

logger = logging.getLogger("kk99.quant")
EQUITY_POINTS = 2000
STALE_AFTER = dt.timedelta(minutes=15)  # far above any allowed run (100,000 bars take seconds)


def _progress(run: BacktestRun, value: int) -> None:
    BacktestRun.objects.filter(pk=run.pk).update(progress=value)


def _load_bars(run: BacktestRun) -> Bars:
    if run.csv_data is not None:
        data = bars_from_csv(bytes(run.csv_data))
        return data[-run.bars:] if len(data) > run.bars else data
    return bars_for_market(symbol=run.symbol, interval=run.interval, limit=run.bars)


def backtest_run_execute(*, run_id: int) -> BacktestRun | None:
    """Run a PENDING run. The run is claimed by a state change, so a redelivered task finds
    it taken and does nothing — unless the claim is older than ``STALE_AFTER``: the worker
    that held it died (kill -9, OOM), and the redelivered task (``acks_late``) takes it over."""
    now = timezone.now()
    claimable = Q(status=BacktestRun.Status.PENDING) | Q(status=BacktestRun.Status.RUNNING, started_at__lt=now - STALE_AFTER)
    claimed = BacktestRun.objects.filter(claimable, pk=run_id).update(status=BacktestRun.Status.RUNNING, progress=5,
                                                                      started_at=now)
    if not claimed:
        return None
    run = BacktestRun.objects.get(pk=run_id)
    try:
        bars = _load_bars(run)
        _progress(run, 30)
        strategy = strategy_build(run.strategy, run.params)
        costs, orders = Costs(fee=run.fee), OrderRules(stop_loss=run.stop_loss)
        if run.engine == BacktestRun.Engine.REPLAY:
            if run.csv_data is not None:  # own data: a tick of 1/10,000 of the price's order of magnitude
                tick, lot, recorded = 10.0 ** np.floor(np.log10(float(np.median(bars.close)))) / 10_000, 1e-6, None
            else:  # the exchange's candles: its own grid, and the market's recorded trades as the taker flow
                tick, lot = market_grid(symbol=run.symbol)
                recorded = flow_for_market(symbol=run.symbol, bars=bars, interval=run.interval)
            result, _ = run_replay(bars.rounded_to(tick), strategy, costs=costs, orders=orders,
                                   venue=Venue(tick_size=tick, lot_size=lot), recorded=recorded)
        else:
            result = run_backtest(bars, strategy, costs=costs, orders=orders)
        _progress(run, 80)
        step = max(1, len(result.equity) // EQUITY_POINTS)
        run.equity = [round(float(v), 6) for v in result.equity[::step]]
        run.metrics = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in result.metrics.as_dict().items()}
        run.status, run.progress = BacktestRun.Status.DONE, 100
    except KK99Error as exc:
        run.status, run.error = BacktestRun.Status.FAILED, exc.message
    except Exception:  # a bug must not leave the run RUNNING forever
        logger.exception("backtest run %s failed", run_id)
        run.status, run.error = BacktestRun.Status.FAILED, "internal error"
    run.finished_at = timezone.now()
    run.save(update_fields=["equity", "metrics", "status", "progress", "error", "finished_at"])
    return run
