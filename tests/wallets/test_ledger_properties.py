"""Property: any sequence of ledger calls — including ones that must fail — keeps the ledger
whole. A simple in-memory model predicts each outcome; after every call the journal and
balances agree with it, a refused call leaves no row, and ``ledger_audit`` stays clean."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wallets.audit import ledger_audit_run
from wallets.errors import DuplicateLedgerEvent, InsufficientFunds, InvalidAmount, InvalidPosting
from wallets.models import Asset, Balance, Bucket, JournalEntry, JournalEvent
from wallets.services import (
    Leg,
    balance_hold,
    balance_release,
    ledger_credit,
    ledger_debit,
    ledger_settle,
    ledger_transfer,
)

pytestmark = pytest.mark.django_db

USERS = 3
PRECISIONS = (2, 8)  # asset 0 has 2 decimals, asset 1 has 8

# Amounts in units of 1/100: valid for both assets. "fine" amounts (1e-9 steps) break the
# 8-decimal precision and must be refused.
amounts = st.one_of(
    st.integers(min_value=1, max_value=5_000).map(lambda n: ("ok", Decimal(n).scaleb(-2))),
    st.integers(min_value=1, max_value=999).filter(lambda n: n % 10).map(lambda n: ("fine", Decimal(n).scaleb(-9))),
)
user_ix = st.integers(0, USERS - 1)
asset_ix = st.integers(0, len(PRECISIONS) - 1)

single = st.tuples(st.sampled_from(["credit", "debit", "hold", "release"]), user_ix, asset_ix, amounts)
transfer = st.tuples(st.just("transfer"), user_ix, user_ix, asset_ix, amounts)
settle = st.tuples(
    st.just("settle"),
    st.lists(
        st.tuples(user_ix, user_ix, asset_ix, st.sampled_from([Bucket.AVAILABLE, Bucket.LOCKED]), amounts, st.booleans()),
        min_size=1,
        max_size=6,
    ),
)
replay = st.tuples(st.just("replay"), st.integers(min_value=0))
operations = st.lists(st.one_of(single, transfer, settle, replay), min_size=1, max_size=25)


class Model:
    def __init__(self) -> None:
        self.bal: dict[tuple[int, int, str], Decimal] = defaultdict(Decimal)

    def apply_ok(self, deltas: dict[tuple[int, int, str], Decimal]) -> bool:
        return all(self.bal[k] + d >= 0 for k, d in deltas.items())

    def apply(self, deltas) -> None:
        for k, d in deltas.items():
            self.bal[k] += d


def _db_state():
    return JournalEvent.objects.count(), JournalEntry.objects.count()


def _run(ops, users, assets) -> None:
    model = Model()
    keys: list[str] = []
    for n, op in enumerate(ops):
        key = f"op:{n}"
        kind = op[0]
        expected_error = None
        deltas: dict[tuple[int, int, str], Decimal] = defaultdict(Decimal)
        if kind == "replay":
            if not keys:
                continue
            # replay a key that was applied: must be refused whatever the call
            key = keys[op[1] % len(keys)]
            kind, op = "credit", ("credit", 0, 0, ("ok", Decimal(1)))
            expected_error = DuplicateLedgerEvent

        if kind in ("credit", "debit", "hold", "release", "transfer"):
            if kind == "transfer":
                _, u, v, a, (quality, amount) = op
            else:
                _, u, a, (quality, amount) = op
            if quality == "fine" and expected_error is None:
                expected_error = InvalidAmount
            if kind == "transfer" and u == v and expected_error is None:
                expected_error = InvalidPosting
            if kind == "credit":
                deltas[(u, a, "available")] += amount
            elif kind == "debit":
                deltas[(u, a, "available")] -= amount
            elif kind == "hold":
                deltas[(u, a, "available")] -= amount
                deltas[(u, a, "locked")] += amount
            elif kind == "release":
                deltas[(u, a, "locked")] -= amount
                deltas[(u, a, "available")] += amount
            else:
                deltas[(u, a, "available")] -= amount
                deltas[(v, a, "available")] += amount
            call = {
                "credit": lambda: ledger_credit(user=users[u], asset=assets[a], amount=amount, idempotency_key=key, kind="deposit"),
                "debit": lambda: ledger_debit(user=users[u], asset=assets[a], amount=amount, idempotency_key=key, kind="withdrawal"),
                "hold": lambda: balance_hold(user=users[u], asset=assets[a], amount=amount, idempotency_key=key),
                "release": lambda: balance_release(user=users[u], asset=assets[a], amount=amount, idempotency_key=key),
                "transfer": lambda: ledger_transfer(
                    from_user=users[u], to_user=users[v], asset=assets[a], amount=amount, idempotency_key=key, kind="transfer"
                ),
            }[kind]
        else:  # settle: each move takes from (u, bucket) and gives to v's available, maybe via fees
            legs = []
            for u, v, a, bucket, (quality, amount), with_fee in op[1]:
                if quality == "fine" and expected_error is None:
                    expected_error = InvalidAmount
                legs.append(Leg(users[u], assets[a], bucket, -amount))
                deltas[(u, a, str(bucket))] -= amount
                if with_fee and amount > Decimal("0.01"):
                    legs.append(Leg(users[v], assets[a], Bucket.AVAILABLE, amount - Decimal("0.01")))
                    legs.append(Leg("fees", assets[a], Bucket.AVAILABLE, Decimal("0.01")))
                else:
                    legs.append(Leg(users[v], assets[a], Bucket.AVAILABLE, amount))
                deltas[(v, a, "available")] += amount - (Decimal("0.01") if with_fee and amount > Decimal("0.01") else 0)
            call = lambda: ledger_settle(idempotency_key=key, kind="trade", legs=legs)

        if expected_error is None and not model.apply_ok(deltas):
            expected_error = InsufficientFunds
        before = _db_state()
        if expected_error is None:
            call()
            model.apply(deltas)
            keys.append(key)
        else:
            with pytest.raises(expected_error):
                call()
            assert _db_state() == before, f"refused {op} left rows behind"

    # the database agrees with the model, nothing is negative, the audit is clean
    for b in Balance.objects.filter(account__user__isnull=False).select_related("account"):
        u = next(i for i, usr in enumerate(users) if usr.pk == b.account.user_id)
        a = next(i for i, asset in enumerate(assets) if asset.pk == b.asset_id)
        assert b.available >= 0 and b.locked >= 0
        assert b.available == model.bal[(u, a, "available")]
        assert b.locked == model.bal[(u, a, "locked")]
    report = ledger_audit_run()
    assert report.ok, report.render()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
def test_any_sequence_of_ledger_calls_keeps_the_ledger_whole(django_user_model, ops):
    with transaction.atomic():
        users = [django_user_model.objects.create_user(email=f"p{i}@example.com", password="unused-password-1") for i in range(USERS)]
        assets = [Asset.objects.create(symbol=f"A{p}", name=f"asset {p}", precision=p) for p in PRECISIONS]
        try:
            _run(ops, users, assets)
        finally:
            transaction.set_rollback(True)
