"""ledger_settle is the trading engine's hot path: its statement count must not grow with legs."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from wallets.audit import ledger_audit_run
from wallets.models import Bucket, JournalEntry, SystemAccountKind
from wallets.selectors import balance_get, system_balance
from wallets.services import Leg, balance_hold, ledger_settle

pytestmark = pytest.mark.django_db

D = Decimal


def _prepare(users, btc, usdt):
    """Fund and hold for every user in two events (themselves settles)."""
    funding = []
    for u in users:
        funding += [
            Leg(u, usdt, Bucket.AVAILABLE, D("100000")),
            Leg(SystemAccountKind.ISSUANCE, usdt, Bucket.AVAILABLE, D("-100000")),
            Leg(u, btc, Bucket.AVAILABLE, D("10")),
            Leg(SystemAccountKind.ISSUANCE, btc, Bucket.AVAILABLE, D("-10")),
        ]
    ledger_settle(idempotency_key="fund", kind="issuance", legs=funding)
    holds = []
    for u in users:
        holds += [
            Leg(u, usdt, Bucket.AVAILABLE, D("-50000")),
            Leg(u, usdt, Bucket.LOCKED, D("50000")),
            Leg(u, btc, Bucket.AVAILABLE, D("-5")),
            Leg(u, btc, Bucket.LOCKED, D("5")),
        ]
    ledger_settle(idempotency_key="hold", kind="hold", legs=holds)


def _trade_legs(buyer, seller, btc, usdt, qty: Decimal, price: Decimal) -> list[Leg]:
    notional = qty * price
    fee_quote = (notional / 1000).quantize(D("0.01"))
    fee_base = (qty / 1000).quantize(D("0.00000001"))
    return [
        Leg(buyer, usdt, Bucket.LOCKED, -notional),
        Leg(seller, usdt, Bucket.AVAILABLE, notional - fee_quote),
        Leg(SystemAccountKind.FEES, usdt, Bucket.AVAILABLE, fee_quote),
        Leg(seller, btc, Bucket.LOCKED, -qty),
        Leg(buyer, btc, Bucket.AVAILABLE, qty - fee_base),
        Leg(SystemAccountKind.FEES, btc, Bucket.AVAILABLE, fee_base),
    ]


def _settle_batch(users, btc, usdt, trades: int, key: str) -> int:
    legs = []
    for i in range(trades):
        buyer, seller = users[i % len(users)], users[(i * 7 + 1) % len(users)]
        if buyer.pk == seller.pk:
            seller = users[(i + 1) % len(users)]
        legs += _trade_legs(buyer, seller, btc, usdt, D("0.01"), D(1000) + i % 50)
    with CaptureQueriesContext(connection) as ctx:
        ledger_settle(idempotency_key=key, kind="trade", legs=legs)
    return len(ctx.captured_queries)


def test_settling_1000_trades_takes_as_few_statements_as_settling_one(make_user, btc, usdt):
    users = [make_user() for _ in range(150)]
    _prepare(users, btc, usdt)

    one = _settle_batch(users, btc, usdt, 1, "batch:1")
    thousand = _settle_batch(users, btc, usdt, 1000, "batch:1000")

    assert thousand <= 12, thousand  # + the outbox: stream heads (one upsert) and events (one COPY)
    assert thousand <= one + 1  # the users' accounts and rows exist, so only the sizes differ
    assert JournalEntry.objects.filter(event__idempotency_key="batch:1000").count() == 6000
    report = ledger_audit_run()
    assert report.ok, report.render()
    fees = system_balance(kind="fees", asset=btc).available
    assert fees == D("0.00001") * 1001
    assert sum(balance_get(user=u, asset=btc).total for u in users) + fees == D(10) * len(users)


def test_settle_locks_each_touched_balance_row_once_in_a_single_statement(alice, bob, btc, usdt, fund):
    fund(alice, usdt, "1000")
    fund(bob, btc, "1")
    fund(alice, btc, "1")
    fund(bob, usdt, "1")
    legs = []
    for _ in range(200):
        legs += [Leg(alice, usdt, "available", D("-1")), Leg(bob, usdt, "available", D("1"))]
        legs += [Leg(bob, btc, "available", D("-0.001")), Leg(alice, btc, "available", D("0.001"))]
    with CaptureQueriesContext(connection) as ctx:
        ledger_settle(idempotency_key="x", kind="trade", legs=legs)
    locking = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(("SELECT b.id", 'SELECT "wallets_balance"."id"'))]
    updates = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("WITH") and "wallets_balance" in q["sql"]]
    assert len(locking) == 1 and len(updates) == 1
    if connection.vendor == "postgresql":
        assert "FOR UPDATE" in locking[0]
    assert balance_get(user=bob, asset=usdt).available == D(201)


def test_a_hold_on_an_existing_balance_costs_a_fixed_handful_of_statements(alice, usdt, fund):
    fund(alice, usdt, "10")
    with CaptureQueriesContext(connection) as ctx:
        for i in range(3):
            balance_hold(user=alice, asset=usdt, amount=D("1"), idempotency_key=f"h:{i}")
    # per call: account lookup, savepoint/insert/release for the event, existence check,
    # lock, entries, balances (+ the test transaction's own savepoint pair)
    assert len(ctx.captured_queries) <= 3 * 10
