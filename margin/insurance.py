"""The insurance fund: the ``INSURANCE_FUND`` system account of the ledger (never negative).

Money in: liquidation fees (:func:`insurance_fee_collect`) and operator top-ups
(:func:`insurance_fund_topup`, from ``ADJUSTMENTS``). Money out: shortfalls of liquidated
accounts (:func:`insurance_cover`: the fund pays the asset the account still owes INTO the
account, which then repays its loan the normal way). What the fund cannot cover is bad debt,
written off against the lending pool (:mod:`margin.liquidation`). Every movement is one
journal event (kind ``liquidation`` for fees, ``insurance`` for covers and top-ups) with an
idempotency key; the history is the ledger itself (:func:`insurance_fund_history`).
"""
from __future__ import annotations

from decimal import Decimal


from wallets.models import Account, Asset, Balance, Bucket, JournalEntry, JournalEvent, JournalEventKind, SystemAccountKind
from wallets.services import Leg, ledger_settle, system_account

FUND = SystemAccountKind.INSURANCE_FUND


def insurance_fee_collect(*, account: Account, asset: Asset, amount: Decimal, idempotency_key: str, reference: str = "") -> JournalEvent | None:
    """A liquidation fee: ``account`` AVAILABLE −amount → fund. None for a zero fee."""
    if amount <= 0:
        return None
    return ledger_settle(
        idempotency_key=idempotency_key, kind=JournalEventKind.LIQUIDATION, reference=reference, memo="liquidation fee",
        legs=[Leg(account=account, asset=asset, bucket=Bucket.AVAILABLE, amount=-amount), Leg(account=FUND, asset=asset, bucket=Bucket.AVAILABLE, amount=amount)],
    )


def insurance_cover(*, account: Account, asset: Asset, amount: Decimal, idempotency_key: str, reference: str = "") -> JournalEvent | None:
    """The fund pays ``amount`` of ``asset`` into ``account`` to cover a shortfall (raises
    ``InsufficientFunds`` rather than letting the fund go negative)."""
    if amount <= 0:
        return None
    return ledger_settle(
        idempotency_key=idempotency_key, kind=JournalEventKind.INSURANCE, reference=reference, memo="insurance fund covers a shortfall",
        legs=[Leg(account=FUND, asset=asset, bucket=Bucket.AVAILABLE, amount=-amount), Leg(account=account, asset=asset, bucket=Bucket.AVAILABLE, amount=amount)],
    )


def insurance_fund_topup(*, asset: Asset, amount: Decimal, idempotency_key: str, actor=None, memo: str = "insurance fund top-up") -> JournalEvent:
    """The exchange adds its own money to the fund (from ``ADJUSTMENTS``)."""
    return ledger_settle(
        idempotency_key=idempotency_key, kind=JournalEventKind.INSURANCE, memo=memo, actor=actor,
        legs=[Leg(account=SystemAccountKind.ADJUSTMENTS, asset=asset, bucket=Bucket.AVAILABLE, amount=-amount),
              Leg(account=FUND, asset=asset, bucket=Bucket.AVAILABLE, amount=amount)],
    )


def insurance_fund_balance(asset: Asset) -> Decimal:
    value = Balance.objects.filter(account__system_kind=FUND, asset=asset).values_list("available", flat=True).first()
    return value or Decimal(0)


def insurance_fund_balances() -> dict[str, Decimal]:
    """Asset symbol → the fund's balance."""
    return dict(Balance.objects.filter(account__system_kind=FUND).values_list("asset__symbol", "available"))


def insurance_fund_history(*, limit: int = 100):
    """The fund's journal entries, newest first (fees in, covers out, top-ups)."""
    fund = system_account(FUND)
    return JournalEntry.objects.filter(account=fund).select_related("event", "asset").order_by("-id")[:limit]
