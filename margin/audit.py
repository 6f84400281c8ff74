"""Margin's part of ``ledger_audit`` (``wallets.audit`` calls :func:`margin_audit_problems`).

Exact, per asset, against the journal:

1. every loan equals the sum of its events: principal = Σ event.principal, interest = Σ
   event.interest (events are append-only; the loan is their running sum);
2. Σ Loan.principal = Σ borrow + Σ capitalise − Σ repaid principal − Σ written off (from the
   loan events), and Σ Loan.principal + Σ written off = what the lending pool lent net: −Σ of
   its journal entries in BORROW / REPAY / INTEREST / LIQUIDATION events (pool funding and
   any refund of bad debt, e.g. from the insurance fund, are other kinds and not counted);
3. interest: INTEREST_INCOME's balance = Σ interest paid (repaid + capitalised);
4. every BORROW / REPAY journal event belongs to a loan event (no money moved around a loan).
"""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import Q, Sum

from margin.models import Loan, LoanEvent, LoanEventKind
from wallets.models import Asset, Balance, JournalEntry, JournalEvent, JournalEventKind, SystemAccountKind

MAX_LISTED = 50
# Journal event kinds whose LENDING_POOL legs are loan money: lent out (borrow, capitalised
# interest) or paid back (repay, a liquidation's repayment).
POOL_LOAN_KINDS = (JournalEventKind.BORROW, JournalEventKind.REPAY, JournalEventKind.INTEREST, JournalEventKind.LIQUIDATION)


def _d(value) -> Decimal:
    return Decimal(value) if value is not None else Decimal(0)


def margin_audit_problems() -> list[str]:
    problems: list[str] = []
    symbols = dict(Asset.objects.values_list("pk", "symbol"))

    # 1. loans against their events
    sums = {
        row["loan_id"]: (_d(row["p"]), _d(row["i"]))
        for row in LoanEvent.objects.order_by().values("loan_id").annotate(p=Sum("principal"), i=Sum("interest"))
    }
    principal_by_asset: dict[int, Decimal] = defaultdict(Decimal)
    for loan in Loan.objects.order_by("pk").iterator(chunk_size=5000):
        p, i = sums.get(loan.pk, (Decimal(0), Decimal(0)))
        if loan.principal != p or loan.interest != i:
            problems.append(f"loan:{loan.pk} {symbols[loan.asset_id]}: principal {loan.principal} / interest {loan.interest} != events {p} / {i}")
        principal_by_asset[loan.asset_id] += loan.principal

    # 2. principal against the pool (journal): what the pool lent net of repayments
    lent = defaultdict(Decimal)
    for row in (
        JournalEntry.objects.filter(account__system_kind=SystemAccountKind.LENDING_POOL, event__kind__in=POOL_LOAN_KINDS)
        .order_by().values("asset_id").annotate(s=Sum("amount"))
    ):
        lent[row["asset_id"]] = -_d(row["s"])
    by_kind = defaultdict(Decimal)
    for row in LoanEvent.objects.order_by().values("loan__asset_id", "kind").annotate(p=Sum("principal"), i=Sum("interest")):
        by_kind[(row["loan__asset_id"], row["kind"], "p")] = _d(row["p"])
        by_kind[(row["loan__asset_id"], row["kind"], "i")] = _d(row["i"])
    for asset_id in sorted(set(principal_by_asset) | set(lent), key=lambda a: symbols[a]):
        owed = principal_by_asset.get(asset_id, Decimal(0))
        from_events = sum((by_kind[(asset_id, k, "p")] for k in LoanEventKind.values), Decimal(0))
        written_off = -by_kind[(asset_id, LoanEventKind.WRITEOFF, "p")]
        if owed != from_events:
            problems.append(f"{symbols[asset_id]}: loans' principal {owed} != borrowed − repaid − written off {from_events}")
        if owed + written_off != lent[asset_id]:
            problems.append(
                f"{symbols[asset_id]}: loans' principal {owed} + written off {written_off} != what the lending pool lent net {lent[asset_id]}"
            )

    # 3. interest paid against INTEREST_INCOME
    income = defaultdict(Decimal)
    for row in Balance.objects.filter(account__system_kind=SystemAccountKind.INTEREST_INCOME).values("asset_id", "available", "locked"):
        income[row["asset_id"]] = row["available"] + row["locked"]
    for asset_id in sorted(set(income) | {a for a, _, _ in by_kind}, key=lambda a: symbols[a]):
        paid = -(by_kind[(asset_id, LoanEventKind.REPAY, "i")] + by_kind[(asset_id, LoanEventKind.CAPITALISE, "i")])
        if paid != income[asset_id]:
            problems.append(f"{symbols[asset_id]}: interest paid {paid} != interest income {income[asset_id]}")

    # 4. loan-moving journal events without a loan event
    orphans = (
        JournalEvent.objects.filter(Q(kind=JournalEventKind.BORROW) | Q(kind=JournalEventKind.REPAY))
        .exclude(pk__in=LoanEvent.objects.filter(journal_event__isnull=False).values("journal_event_id"))
        .order_by("pk").values_list("pk", "idempotency_key")[: MAX_LISTED + 1]
    )
    problems.extend(f"journal event #{pk} ({key}) moved loan money without a loan event" for pk, key in orphans)
    return problems
