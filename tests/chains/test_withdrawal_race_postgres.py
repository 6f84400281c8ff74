"""Withdrawal races on PostgreSQL (threads, one connection each, released together): the
rolling 24-hour review and the idempotency key hold when requests arrive at the same time."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from wallets.chains.models import Withdrawal, WithdrawalStatus
from wallets.audit import ledger_audit_run
from wallets.chains.services import withdrawal_request

from tests.wallets.test_concurrency_postgres import run_in_threads

from .fakes import bal

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture(autouse=True)
def _no_signing(monkeypatch):
    from wallets.chains import tasks

    monkeypatch.setattr(tasks.withdrawal_process_task, "delay", lambda withdrawal_id: None)


def test_two_concurrent_750_usdt_withdrawals_do_not_both_skip_review(funded, chain_assets, monkeypatch):
    """Deterministic interleaving: right after reading the 24-hour total each request waits
    (bounded) for the other to read it too. The user-row lock makes the second read wait for
    the first commit; without it both would read 0 and both skip the review."""
    from wallets.chains import services

    real_total = services._withdrawn_today_usdt
    both_read = threading.Barrier(2)

    def total_then_wait(user):
        total = real_total(user)
        try:
            both_read.wait(timeout=3)
        except threading.BrokenBarrierError:
            pass
        return total

    monkeypatch.setattr(services, "_withdrawn_today_usdt", total_then_wait)
    results = run_in_threads(
        [lambda: withdrawal_request(user=funded, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("0.25"))] * 2
    )
    assert all(isinstance(r, Withdrawal) for r in results), results
    statuses = sorted(Withdrawal.objects.values_list("status", flat=True))
    assert statuses == sorted([WithdrawalStatus.APPROVED, WithdrawalStatus.PENDING_APPROVAL])


def test_concurrent_requests_with_one_idempotency_key_create_one_withdrawal(funded, chain_assets):
    work = [
        lambda: withdrawal_request(user=funded, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("0.1"), idempotency_key="same")
    ] * 6
    results = run_in_threads(work)

    assert all(isinstance(r, Withdrawal) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Withdrawal.objects.count() == 1
    assert bal(funded, "ETH") == (Decimal("9.899"), Decimal("0.101"))
    assert ledger_audit_run().ok
