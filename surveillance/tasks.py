"""Celery tasks: thin, take ids, call services."""
from __future__ import annotations

from celery import shared_task

from surveillance.services import detectors_run, links_infer
from trading.models import Market


@shared_task(name="surveillance.detectors_run_all", ignore_result=True)
def detectors_run_all() -> int:
    total = 0
    for market_id in Market.objects.order_by("pk").values_list("pk", flat=True):
        total += detectors_run_market.run(market_id)
    return total


@shared_task(name="surveillance.detectors_run_market", ignore_result=True)
def detectors_run_market(market_id: int) -> int:
    market = Market.objects.filter(pk=market_id).first()
    return len(detectors_run(market=market)) if market else 0


@shared_task(name="surveillance.links_infer", ignore_result=True)
def links_infer_task() -> int:
    return links_infer()
