"""Celery tasks: thin wrappers that take ids, re-read state and call a service.

All are idempotent (the services check state under row locks and the database's unique keys
guard money), so ``acks_late`` is safe: a worker killed mid-task has its task redelivered and
the redo finds the work done or does it once. Node errors retry with exponential backoff."""
from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from kk99.conf import kk99_setting
from wallets.chains.errors import ChainUnavailable, SecretUnavailable
from wallets.chains.models import ChainCursor, Withdrawal, WithdrawalStatus

logger = logging.getLogger("kk99.chains.tasks")

_RETRY = {
    "autoretry_for": (ChainUnavailable, SecretUnavailable),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
    "acks_late": True,
}


@shared_task(name="chains.deposits_scan", **_RETRY)
def deposits_scan_task(chain: str) -> dict:
    from wallets.chains.services import deposits_scan

    try:
        result = deposits_scan(chain=chain)
    except Exception as exc:
        ChainCursor.objects.filter(chain=chain).update(last_error=f"{timezone.now():%Y-%m-%d %H:%M:%S} {exc}"[:2000])
        raise
    return {"chain": chain, "scanned": result.scanned, "recorded": result.recorded, "credited": result.credited, "reorgs": result.reorgs, "height": result.height}


@shared_task(name="chains.deposits_scan_all")
def deposits_scan_all_task() -> None:
    for chain in kk99_setting("CHAINS_ENABLED"):
        deposits_scan_task.delay(chain)


@shared_task(name="chains.withdrawal_process", **_RETRY)
def withdrawal_process_task(withdrawal_id: int) -> str:
    from wallets.chains.services import withdrawal_process

    return withdrawal_process(withdrawal_id=withdrawal_id).status


@shared_task(name="chains.withdrawal_track", **_RETRY)
def withdrawal_track_task(withdrawal_id: int) -> str:
    from wallets.chains.services import withdrawal_track

    return withdrawal_track(withdrawal_id=withdrawal_id).status


@shared_task(name="chains.withdrawals_process_all")
def withdrawals_process_all_task() -> None:
    """Picks up approved or signed withdrawals whose task was lost (e.g. broker restart)."""
    for pk in Withdrawal.objects.filter(status__in=[WithdrawalStatus.APPROVED, WithdrawalStatus.SIGNED]).values_list("pk", flat=True):
        withdrawal_process_task.delay(pk)


@shared_task(name="chains.withdrawals_track_all")
def withdrawals_track_all_task() -> None:
    for pk in Withdrawal.objects.filter(status__in=[WithdrawalStatus.BROADCAST, WithdrawalStatus.CONFIRMED]).values_list("pk", flat=True):
        withdrawal_track_task.delay(pk)
