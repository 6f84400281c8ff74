"""Real concurrency on PostgreSQL: threads, each with its own connection, race on the same
balance rows. SQLite serialises writers and would hide these races, so these are skipped there."""
from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection

from wallets.audit import ledger_audit_run
from wallets.errors import DuplicateLedgerEvent, InsufficientFunds
from wallets.models import Asset, JournalEvent
from wallets.selectors import balance_get
from wallets.services import Leg, balance_hold, ledger_credit, ledger_settle, ledger_transfer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

D = Decimal


def run_in_threads(work: list[Callable[[], object]]) -> list[object]:
    """Run every callable in its own thread (own DB connection), all released at once.
    Returns each call's result or the exception it raised."""
    results: list[object] = [None] * len(work)
    barrier = threading.Barrier(len(work))

    def runner(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work[i]()
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    return results


@pytest.fixture
def asset(transactional_db):
    return Asset.objects.create(symbol="USDT", name="Tether", precision=2)


def test_parallel_holds_on_one_balance_never_overdraw_it(django_user_model, asset):
    user = django_user_model.objects.create_user(email="racer@example.com", password="unused-password-1")
    ledger_credit(user=user, asset=asset, amount=D("100.00"), idempotency_key="fund", kind="deposit")

    results = run_in_threads(
        [lambda i=i: balance_hold(user=user, asset=asset, amount=D("7.00"), idempotency_key=f"hold:{i}") for i in range(24)]
    )

    ok = [r for r in results if isinstance(r, JournalEvent)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert len(ok) + len(refused) == 24, [r for r in results if not isinstance(r, (JournalEvent, InsufficientFunds))]
    assert len(ok) == 14  # floor(100 / 7): every hold that fits succeeds, none more
    row = balance_get(user=user, asset=asset)
    assert row.locked == D("7.00") * len(ok)
    assert row.available == D("100.00") - row.locked
    assert ledger_audit_run().ok


def test_parallel_uses_of_one_idempotency_key_apply_exactly_once(django_user_model, asset):
    user = django_user_model.objects.create_user(email="dup@example.com", password="unused-password-1")

    results = run_in_threads(
        [lambda: ledger_credit(user=user, asset=asset, amount=D(5), idempotency_key="deposit:tx:0", kind="deposit")] * 12
    )

    assert sum(isinstance(r, JournalEvent) for r in results) == 1
    assert sum(isinstance(r, DuplicateLedgerEvent) for r in results) == 11
    assert balance_get(user=user, asset=asset).available == D(5)


def test_parallel_opposite_order_transfers_do_not_deadlock(django_user_model, asset):
    a = django_user_model.objects.create_user(email="a@example.com", password="unused-password-1")
    b = django_user_model.objects.create_user(email="b@example.com", password="unused-password-1")
    for u in (a, b):
        ledger_credit(user=u, asset=asset, amount=D(1000), idempotency_key=f"fund:{u.pk}", kind="deposit")

    def burst(src, dst, tag):
        def go():
            for n in range(15):
                ledger_transfer(from_user=src, to_user=dst, asset=asset, amount=D("1.00"), idempotency_key=f"{tag}:{n}", kind="transfer")
                # a settle listing legs in the opposite order of the lock order, too
                ledger_settle(
                    idempotency_key=f"{tag}:s:{n}",
                    kind="trade",
                    legs=[Leg(dst, asset, "available", D("-0.50")), Leg(src, asset, "available", D("0.50"))],
                )
            return "done"

        return go

    results = run_in_threads([burst(a, b, f"ab{i}") if i % 2 else burst(b, a, f"ba{i}") for i in range(8)])

    assert results == ["done"] * 8, results
    total = balance_get(user=a, asset=asset).available + balance_get(user=b, asset=asset).available
    assert total == D(2000)
    assert balance_get(user=a, asset=asset).available == D(1000)  # symmetric traffic
    assert ledger_audit_run().ok


def test_parallel_first_credits_of_new_users_create_one_account_and_row_each(django_user_model, asset):
    users = [django_user_model.objects.create_user(email=f"new{i}@example.com", password="unused-password-1") for i in range(4)]

    work = []
    for i in range(16):
        u = users[i % 4]
        work.append(lambda u=u, i=i: ledger_credit(user=u, asset=asset, amount=D(1), idempotency_key=f"c:{i}", kind="deposit"))
    results = run_in_threads(work)

    assert all(isinstance(r, JournalEvent) for r in results), results
    for u in users:
        assert balance_get(user=u, asset=asset).available == D(4)
    assert ledger_audit_run().ok
