"""Periodic operations tasks (Celery beat, kk99/settings/base.py CELERY_BEAT_SCHEDULE)."""
from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="ops.ledger_audit")
def ledger_audit_periodic() -> bool:
    """Run ``ledger_audit`` and publish its result to /metrics (``kk99_ledger_audit_ok``,
    ``kk99_ledger_audit_last_run_timestamp_seconds``); the alerts page on failure or staleness."""
    from kk99.metrics import ledger_audit_record
    from kk99.ops import ledger_audit_consistent

    report = ledger_audit_consistent()
    ledger_audit_record(ok=report.ok, problems=len(report.problems))
    if not report.ok:
        logger.error("ledger audit failed: %d problems; first: %s", len(report.problems), report.problems[:5])
    return report.ok
