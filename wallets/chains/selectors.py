"""Read-only queries of the chains app."""
from __future__ import annotations

import logging
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from wallets.chains.errors import ChainsError, ChainsErrorCode
from wallets.chains.models import AddressBookSettings, ChainAsset, ChainCursor, Deposit, Withdrawal, WithdrawalAddress
from wallets.chains.units import from_base_units
from wallets.models import Balance

logger = logging.getLogger("kk99.chains")


def deposits_for_user(*, user, chain: str | None = None, limit: int = 50) -> QuerySet[Deposit]:
    qs = Deposit.objects.filter(user=user).select_related("asset")
    if chain:
        qs = qs.filter(chain=chain)
    return qs.order_by("-id")[:limit]


def withdrawals_for_user(*, user, limit: int = 50) -> QuerySet[Withdrawal]:
    return Withdrawal.objects.filter(user=user).select_related("asset").order_by("-id")[:limit]


def chain_asset_for_withdrawal(*, chain: str, symbol: str) -> ChainAsset:
    """The active chain asset ``symbol`` on ``chain``, or ``asset_not_on_chain``."""
    found = ChainAsset.objects.filter(chain=chain, asset__symbol__iexact=symbol.strip(), is_active=True).select_related("asset").first()
    if found is None:
        raise ChainsError(ChainsErrorCode.ASSET_NOT_ON_CHAIN, f"{symbol} cannot be withdrawn on {chain}.")
    return found


def chain_assets_active(*, chain: str | None = None) -> QuerySet[ChainAsset]:
    qs = ChainAsset.objects.filter(is_active=True, asset__is_active=True).select_related("asset")
    return qs.filter(chain=chain) if chain else qs


def ledger_liabilities(*, asset) -> Decimal:
    """What the exchange owes users in ``asset``: the sum of user balances (available + locked)."""
    row = Balance.objects.filter(asset=asset, account__user__isnull=False).aggregate(a=Sum("available"), l=Sum("locked"))
    return (row["a"] or Decimal(0)) + (row["l"] or Decimal(0))


def reserves_report() -> list[dict]:
    """Per chain asset: the hot wallet's on-chain balance next to the ledger's liabilities
    (a proof-of-reserves style view). A node that does not answer shows ``None``."""
    from wallets.chains.adapters import adapter_for
    from wallets.chains.errors import ChainsError
    from wallets.chains.vault import hot_wallet_read

    rows = []
    for chain_asset in chain_assets_active():
        hot_balance = None
        error = ""
        try:
            address = hot_wallet_read(chain_asset.chain)["address"]
            hot_balance = from_base_units(adapter_for(chain_asset.chain).balance(address, chain_asset.contract), chain_asset.decimals)
        except (ChainsError, OSError, KeyError, ValueError) as exc:
            error = str(exc)[:200]
        liabilities = ledger_liabilities(asset=chain_asset.asset)
        rows.append(
            {
                "chain": chain_asset.chain,
                "asset": chain_asset.asset.symbol,
                "hot_balance": hot_balance,
                "liabilities": liabilities,
                "covered": None if hot_balance is None else hot_balance >= liabilities,
                "error": error,
            }
        )
    return rows


def cursor_status() -> list[ChainCursor]:
    return list(ChainCursor.objects.all())


# --- withdrawal address book ------------------------------------------------------------------


def withdrawal_addresses_for_user(*, user, chain: str | None = None) -> QuerySet[WithdrawalAddress]:
    rows = WithdrawalAddress.objects.filter(user=user).select_related("asset")
    return rows.filter(chain=chain) if chain else rows


def address_book_settings(*, user) -> AddressBookSettings:
    """The user's settings (an unsaved default row when they never changed them)."""
    return AddressBookSettings.objects.filter(user=user).first() or AddressBookSettings(user=user)


def whitelist_active(*, user, now=None) -> bool:
    """Whitelist-only mode is on — including while a request to switch it off cools off."""
    row = address_book_settings(user=user)
    if not row.whitelist_only:
        return False
    return row.whitelist_off_at is None or row.whitelist_off_at > (now or timezone.now())


def withdrawal_address_usable(*, user, chain_asset: ChainAsset, address: str, now=None) -> WithdrawalAddress | None:
    """The confirmed, cooled-off entry of the user's book that allows withdrawing
    ``chain_asset`` to ``address`` (canonical form), or None."""
    return (
        WithdrawalAddress.objects.filter(user=user, chain=chain_asset.chain, address=address, confirmed_at__isnull=False, usable_from__lte=now or timezone.now())
        .filter(Q(asset__isnull=True) | Q(asset_id=chain_asset.asset_id))
        .first()
    )
