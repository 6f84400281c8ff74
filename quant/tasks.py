"""Celery task of the Strategies page: takes an id, the service re-reads and claims the row."""
from __future__ import annotations

from celery import shared_task

from quant.jobs import backtest_run_execute


@shared_task(name="quant.backtest_run", acks_late=True)
def backtest_run_task(run_id: int) -> str:
    run = backtest_run_execute(run_id=run_id)
    return run.status if run else "skipped"
