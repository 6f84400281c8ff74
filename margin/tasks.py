"""Margin's Celery beat tasks (schedule: kk99/settings/base.py CELERY_BEAT_SCHEDULE). Thin:
each calls one service, which is idempotent — a task re-run, or killed midway and run again,
charges, notifies or repays nothing twice."""
from __future__ import annotations

from celery import shared_task

from margin import services


@shared_task(name="margin.interest_accrue_all")
def interest_accrue_all() -> int:
    """The current UTC hour's interest on every open loan (once per loan and hour)."""
    return services.interest_accrue_all()


@shared_task(name="margin.states_refresh")
def states_refresh() -> int:
    """Every indebted margin account's state; margin calls notified (again every 24 h)."""
    return services.margin_states_refresh_all()


@shared_task(name="margin.auto_repay_sweep")
def auto_repay_sweep() -> int:
    """AUTO_REPAY orders that ended: repay from their proceeds (once per order)."""
    return services.auto_repay_sweep()
