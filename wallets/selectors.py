"""Read-only queries over the ledger (services write, selectors read).

A user's balances and journal here are those of their SPOT account; margin accounts are read
through ``margin.selectors``."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q, QuerySet

from wallets.services import LEDGER_DECIMAL_CONTEXT
from wallets.models import AccountPurpose, Asset, Balance, JournalEntry, SystemAccountKind


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """A balance as shown to people: amounts quantized to the asset's precision."""

    asset: Asset
    available: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        with localcontext(LEDGER_DECIMAL_CONTEXT):
            return self.available + self.locked

    @classmethod
    def of(cls, asset: Asset, available: Decimal | int = 0, locked: Decimal | int = 0) -> BalanceRow:
        quantum = Decimal(1).scaleb(-asset.precision)
        with localcontext(LEDGER_DECIMAL_CONTEXT):
            return cls(asset=asset, available=Decimal(available).quantize(quantum), locked=Decimal(locked).quantize(quantum))


def balances_for_user(*, user: AbstractBaseUser) -> list[BalanceRow]:
    """One row per active asset (zero when the user never held it), plus any inactive asset
    the user still holds; ordered by symbol. Two queries."""
    held = {b.asset_id: b for b in Balance.objects.filter(account__user_id=user.pk, account__purpose=AccountPurpose.SPOT)}
    assets = Asset.objects.filter(Q(is_active=True) | Q(pk__in=[a for a, b in held.items() if b.available or b.locked]))
    rows = []
    for asset in assets.order_by("symbol"):
        b = held.get(asset.pk)
        rows.append(BalanceRow.of(asset, b.available, b.locked) if b else BalanceRow.of(asset))
    return rows


def balance_get(*, user: AbstractBaseUser, asset: Asset) -> BalanceRow:
    """The user's balance in ``asset`` (zeros if they never held it)."""
    b = Balance.objects.filter(account__user_id=user.pk, account__purpose=AccountPurpose.SPOT, asset=asset).first()
    return BalanceRow.of(asset, b.available, b.locked) if b else BalanceRow.of(asset)


def system_balance(*, kind: SystemAccountKind | str, asset: Asset) -> BalanceRow:
    """A system account's balance in ``asset`` (may be negative for counter-accounts)."""
    b = Balance.objects.filter(account__system_kind=SystemAccountKind(kind), asset=asset).first()
    return BalanceRow.of(asset, b.available, b.locked) if b else BalanceRow.of(asset)


def journal_for_user(*, user: AbstractBaseUser, asset: Asset | None = None) -> QuerySet[JournalEntry]:
    """The user's journal entries, newest first, with their event and asset joined."""
    qs = JournalEntry.objects.filter(account__user_id=user.pk, account__purpose=AccountPurpose.SPOT).select_related("event", "asset").order_by("-id")
    if asset is not None:
        qs = qs.filter(asset=asset)
    return qs
