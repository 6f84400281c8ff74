"""``ledger_audit``: prove the ledger is whole.

1. every balance row equals the sum of its journal entries, per bucket (and no entries exist
   without a balance row);
2. every event has entries and they sum to zero per asset;
3. per asset, the sum over all accounts is zero (user liabilities are matched by the system
   counter-accounts), and no account that may not go negative is negative;
4. the KK99 supply reconciles (``wallets.chains.token``);
5. every staff adjustment event posted since the two-person rule exists (migration
   ``wallets.0004``) belongs to an approved request of two different staff members — an
   adjustment event without one was written around the rule;
6. margin loans reconcile (``margin.audit``): each loan with its events, Σ principal with what
   left the lending pool, interest paid with interest income.

:func:`ledger_audit_run` returns an :class:`AuditReport`; the management command prints it and
exits non-zero when it is not clean. Sums are done by the database in exact NUMERIC and
compared exactly: there is no tolerance (every configuration, the embedded default included,
runs on PostgreSQL).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Sum

from margin.audit import margin_audit_problems
from wallets.services import LEDGER_DECIMAL_CONTEXT
from wallets.models import (
    Account,
    AdjustmentRequest,
    AdjustmentStatus,
    Asset,
    Balance,
    JournalEntry,
    JournalEvent,
    JournalEventKind,
)

MAX_LISTED = 50  # problems listed per section; the count is always exact


@dataclass
class AssetTotal:
    symbol: str
    users_available: Decimal = Decimal(0)
    users_locked: Decimal = Decimal(0)
    system: dict[str, Decimal] = field(default_factory=dict)
    net: Decimal = Decimal(0)

    @property
    def user_liabilities(self) -> Decimal:
        return self.users_available + self.users_locked


@dataclass
class AuditReport:
    balances_checked: int = 0
    events_checked: int = 0
    balance_mismatches: list[str] = field(default_factory=list)
    unbalanced_events: list[str] = field(default_factory=list)
    totals_problems: list[str] = field(default_factory=list)
    asset_totals: list[AssetTotal] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [*self.balance_mismatches, *self.unbalanced_events, *self.totals_problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [
            f"Ledger audit: {self.balances_checked} balances, {self.events_checked} events checked.",
            "",
            f"{'asset':<8} {'users available':>26} {'users locked':>26} {'net (must be 0)':>18}  system accounts",
        ]
        for t in self.asset_totals:
            system = ", ".join(f"{k}={v}" for k, v in sorted(t.system.items())) or "-"
            lines.append(f"{t.symbol:<8} {t.users_available:>26} {t.users_locked:>26} {t.net:>18}  {system}")
        lines.append("")
        for title, items in (
            ("Balances that differ from their entries", self.balance_mismatches),
            ("Events that do not balance", self.unbalanced_events),
            ("Totals and sign problems", self.totals_problems),
        ):
            if items:
                lines.append(f"{title}: {len(items)}")
                lines.extend(f"  - {item}" for item in items[:MAX_LISTED])
                if len(items) > MAX_LISTED:
                    lines.append(f"  … and {len(items) - MAX_LISTED} more")
        lines.append("RESULT: OK" if self.ok else f"RESULT: FAILED ({len(self.problems)} problems)")
        return "\n".join(lines)


def _exact(value: Decimal | None) -> Decimal:
    return Decimal(value) if value is not None else Decimal(0)


def ledger_audit_run() -> AuditReport:
    with localcontext(LEDGER_DECIMAL_CONTEXT):
        return _audit()


def _audit() -> AuditReport:
    report = AuditReport()
    assets = {a.pk: a for a in Asset.objects.all()}
    accounts = {a.pk: a for a in Account.objects.all()}
    precision = {pk: a.precision for pk, a in assets.items()}

    # 1. balances against entries
    sums: dict[tuple[int, int], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in JournalEntry.objects.order_by().values("account_id", "asset_id", "bucket").annotate(s=Sum("amount")):
        sums[(row["account_id"], row["asset_id"])][0 if row["bucket"] == "available" else 1] = row["s"]
    totals = {pk: AssetTotal(symbol=a.symbol) for pk, a in assets.items()}
    seen: set[tuple[int, int]] = set()
    for b in Balance.objects.order_by("account_id", "asset_id").iterator(chunk_size=5000):
        report.balances_checked += 1
        key = (b.account_id, b.asset_id)
        seen.add(key)
        expected_available, expected_locked = sums.get(key, (Decimal(0), Decimal(0)))
        account = accounts[b.account_id]
        symbol = assets[b.asset_id].symbol
        for bucket, have, want in (
            ("available", b.available, expected_available),
            ("locked", b.locked, expected_locked),
        ):
            if _exact(have) != _exact(want):
                report.balance_mismatches.append(f"{account} {symbol} {bucket}: balance {_exact(have)} != entries {_exact(want)}")
        if b.allow_negative != account.allow_negative:
            report.totals_problems.append(f"{account} {symbol}: allow_negative differs from its account")
        if not account.allow_negative and (b.available < 0 or b.locked < 0):
            report.totals_problems.append(f"{account} {symbol}: negative balance {b.available} / {b.locked} locked")
        t = totals[b.asset_id]
        t.net += b.available + b.locked
        if account.system_kind:
            t.system[account.system_kind] = t.system.get(account.system_kind, Decimal(0)) + b.available + b.locked
        else:
            t.users_available += b.available
            t.users_locked += b.locked
    for key in sorted(sums.keys() - seen):
        if all(_exact(v) == 0 for v in sums[key]):
            continue  # legs that cancelled out within one event: no row needed
        report.balance_mismatches.append(f"{accounts[key[0]]} {assets[key[1]].symbol}: entries without a balance row")

    # 2. every event balances per asset and has entries
    report.events_checked = JournalEvent.objects.count()
    per_event = JournalEntry.objects.order_by().values("event_id", "asset_id").annotate(s=Sum("amount")).exclude(s=0)
    for row in per_event.iterator(chunk_size=5000):
        if _exact(row["s"]) != 0:
            report.unbalanced_events.append(
                f"event #{row['event_id']} {assets[row['asset_id']].symbol}: entries sum to {row['s']}"
            )
    for event_id in JournalEvent.objects.filter(entries__isnull=True).values_list("pk", flat=True)[: MAX_LISTED + 1]:
        report.unbalanced_events.append(f"event #{event_id} has no entries")

    # 3. per-asset totals
    for asset_id, t in sorted(totals.items(), key=lambda kv: kv[1].symbol):
        p = precision[asset_id]
        if t.net != 0:
            report.totals_problems.append(f"{t.symbol}: balances over all accounts sum to {t.net}, not 0")
        quantum = Decimal(1).scaleb(-p)  # for display only; the check above is exact
        t.net, t.users_available, t.users_locked = (v.quantize(quantum) for v in (t.net, t.users_available, t.users_locked))
        t.system = {k: v.quantize(quantum) for k, v in t.system.items()}
        if t.user_liabilities or t.system or t.net:
            report.asset_totals.append(t)
    # 4. the KK99 token: issued − burned = sum of all balances
    from wallets.chains.token import token_supply_problems

    report.totals_problems.extend(token_supply_problems())
    # 5. staff adjustments: two people each
    report.totals_problems.extend(_adjustment_problems())
    # 6. margin: loans reconcile with their events, the lending pool and interest income
    report.totals_problems.extend(margin_audit_problems())
    return report


TWO_PERSON_MIGRATION = ("wallets", "0004_adjustment_requests")


def _adjustment_problems() -> list[str]:
    applied = (
        MigrationRecorder.Migration.objects.filter(app=TWO_PERSON_MIGRATION[0], name=TWO_PERSON_MIGRATION[1])
        .values_list("applied", flat=True)
        .first()
    )
    events = JournalEvent.objects.filter(kind=JournalEventKind.ADJUSTMENT)
    if applied is not None:  # adjustments made before the rule existed are history
        events = events.filter(created_at__gte=applied)
    approved = AdjustmentRequest.objects.filter(status=AdjustmentStatus.APPROVED, journal_event__isnull=False)
    orphans = events.exclude(pk__in=approved.values("journal_event_id")).order_by("pk").values_list("pk", "idempotency_key")
    return [f"adjustment event #{pk} ({key}) has no approved two-person request" for pk, key in orphans[: MAX_LISTED + 1]]
