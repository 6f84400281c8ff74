"""The liquidation Celery task (thin: it calls margin.liquidation). Imported by
MarginConfig.ready so workers register it (margin/tasks.py is the margin helper's home)."""
from __future__ import annotations

from celery import shared_task
from margin import liquidation


@shared_task(name="margin.liquidation_cycle", ignore_result=True)
def liquidation_cycle_task() -> dict:
    """Celery beat (every KK99_LIQUIDATION_CYCLE_SECONDS) and the engine hook: start due
    liquidations, advance those in progress (margin.liquidation; idempotent step by step)."""
    r = liquidation.liquidation_cycle()
    return {"started": r.started, "advanced": r.advanced, "finished": r.finished}
