"""The chains app's write services: deposit addresses, the deposit scanner and crediting, and
the withdrawal life cycle. Tasks (``tasks.py``) and views call these; nothing else writes.

Exactly once, by construction:

* A deposit row is unique on (chain, txid, index); its credit is one ledger event keyed
  ``deposit:<chain>:<txid>:<index>`` and posted in the same transaction that marks it credited.
  A re-scan finds the row; a duplicate task blocks on the cursor row lock and then finds the
  work done; a crash rolls the block's transaction back and the next run redoes it.
* Reorgs are found by hashes: before scanning, the cursor's hash is compared with the chain's
  hash at that height, and every new block's parent hash with the cursor's. On a mismatch the
  scanner walks back to the fork, orphans not-yet-credited deposits of the dropped blocks and
  scans the new branch. A deposit is credited only when its block is final by the chain's rule
  *and* the chain still has its block hash.
* A withdrawal is signed under its row lock and the per-chain hot-wallet lock; the signed bytes,
  txid and nonce are committed (status ``signed``) before any broadcast. Broadcasting and
  re-broadcasting send those bytes; a new signature is only ever made when the old transaction
  provably can never land (TRON expiration / Solana blockhash passed, and the chain does not
  know it).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.audit import AuditAction, audit_record
from accounts.selectors import kyc_limits, user_can_withdraw
from kk99.conf import kk99_setting
from wallets.chains.adapters import adapter_for
from wallets.chains.adapters.base import ChainAdapter, Transfer, Watch
from wallets.chains.addresses import address_is_burn, address_match_key, address_validate
from wallets.chains.chain import Chain, chain_enabled
from wallets.chains.errors import ChainsError, ChainsErrorCode, TransactionExpired
from wallets.chains.faults import fault_point
from wallets.chains.hd import deposit_address_derive
from wallets.chains.models import (
    ChainAsset,
    ChainCursor,
    Deposit,
    DepositAddress,
    DepositStatus,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    HotWallet,
    ScannedBlock,
    Withdrawal,
    WithdrawalApproval,
    WithdrawalStatus,
)
from wallets.chains.selectors import whitelist_active, withdrawal_address_usable
from wallets.chains.units import from_base_units, to_base_units
from wallets.chains.vault import deposit_key_read, hot_wallet_read
from wallets.errors import DuplicateLedgerEvent
from wallets.models import Bucket, JournalEvent, JournalEventKind, SystemAccountKind
from wallets.services import Leg, amount_quantize, balance_changed_publish, balance_hold, balance_release, ledger_settle

logger = logging.getLogger("kk99.chains")


# --- deposit addresses --------------------------------------------------------------------------


def deposit_address_get_or_create(*, user, chain: str) -> DepositAddress:
    """The user's deposit address on ``chain`` (ERC-20/TRC-20 share it), derived on first use
    from the chain's public material in Vault. Index = the user's id (see ``hd.py``)."""
    if not chain_enabled(chain):
        raise ChainsError(ChainsErrorCode.UNKNOWN_CHAIN, f"Chain {chain!r} is not enabled.")
    existing = DepositAddress.objects.filter(user=user, chain=chain).first()
    if existing:
        return existing
    address = deposit_address_derive(chain=chain, material=deposit_key_read(chain), index=user.pk)
    try:
        with transaction.atomic():
            return DepositAddress.objects.create(user=user, chain=chain, address=address, derivation_index=user.pk)
    except IntegrityError:
        return DepositAddress.objects.get(user=user, chain=chain)


# --- the scanner ------------------------------------------------------------------------------


@dataclass
class ScanResult:
    chain: str
    scanned: int = 0
    recorded: int = 0
    credited: int = 0
    reorgs: int = 0
    head: int | None = None
    height: int | None = None


def _watch(chain: str) -> tuple[Watch, dict[str, DepositAddress], dict[str, ChainAsset]]:
    addresses = {address_match_key(chain, a.address): a for a in DepositAddress.objects.filter(chain=chain).select_related("user")}
    assets = {ca.contract.lower(): ca for ca in ChainAsset.objects.filter(chain=chain, is_active=True).select_related("asset")}
    contracts = frozenset(ca.contract if chain not in (Chain.ETH,) else ca.contract.lower() for ca in assets.values() if ca.contract)
    return Watch(addresses=frozenset(addresses), contracts=contracts), addresses, assets


def _cursor_init(chain: str, adapter: ChainAdapter) -> ChainCursor:
    cursor = ChainCursor.objects.filter(chain=chain).first()
    if cursor:
        return cursor
    head = adapter.head_height()
    height = max(-1, head - kk99_setting("CHAIN_SCAN_START_BACK"))
    block_hash = adapter.block_hash(height) if height >= 0 else ""
    try:
        with transaction.atomic():
            cursor = ChainCursor.objects.create(chain=chain, height=height, hash=block_hash or "")
            if block_hash:
                ScannedBlock.objects.create(chain=chain, height=height, hash=block_hash)
            return cursor
    except IntegrityError:
        return ChainCursor.objects.get(chain=chain)


def _deposit_record(*, chain: str, transfer: Transfer, block_height: int, block_hash: str, addresses: dict, assets: dict) -> bool:
    """Record one transfer (inside the block's transaction). True if a row was created or revived."""
    owner = addresses.get(address_match_key(chain, transfer.to_address))
    chain_asset = assets.get(transfer.contract.lower())
    if owner is None or chain_asset is None:
        return False
    existing = Deposit.objects.select_for_update().filter(chain=chain, txid=transfer.txid, index=transfer.index).first()
    if existing is not None:
        if existing.status == DepositStatus.ORPHANED:  # the transaction came back in the new branch
            existing.block_height, existing.block_hash = block_height, block_hash
            existing.status, existing.confirmations = DepositStatus.DETECTED, 1
            existing.save(update_fields=["block_height", "block_hash", "status", "confirmations", "updated_at"])
            return True
        return False
    amount = from_base_units(transfer.amount_base, chain_asset.decimals)
    try:
        with transaction.atomic():
            Deposit.objects.create(
                chain=chain,
                txid=transfer.txid,
                index=transfer.index,
                asset=chain_asset.asset,
                chain_asset=chain_asset,
                user=owner.user,
                address=owner.address,
                from_address=transfer.from_address[:100],
                amount=amount,
                amount_base_units=str(transfer.amount_base),
                block_height=block_height,
                block_hash=block_hash,
                confirmations=1,
            )
    except IntegrityError:  # a concurrent scanner recorded it first: the constraint is the guard
        return False
    return True


def _reorg_unwind(*, cursor: ChainCursor, adapter: ChainAdapter) -> int:
    """Walk back from the cursor (locked by the caller) to the last block whose hash the chain
    still has; orphan deposits of dropped blocks. Returns the number of blocks dropped."""
    chain = cursor.chain
    height = cursor.height
    dropped = 0
    max_depth = kk99_setting("CHAIN_MAX_REORG_DEPTH")
    while height >= 0:
        ours = ScannedBlock.objects.filter(chain=chain, height=height).first()
        theirs = adapter.block_hash(height)
        if ours is not None and ours.hash == theirs:
            break
        if ours is None and theirs is None:
            height -= 1  # a skipped slot (or a height the shorter chain no longer has) with nothing of ours
            continue
        for deposit in Deposit.objects.select_for_update().filter(chain=chain, block_height=height).exclude(status=DepositStatus.ORPHANED):
            if deposit.status == DepositStatus.CREDITED:
                logger.critical("Deposit %s was credited but its block %s was reorganised away", deposit, height)
                audit_record(
                    action=AuditAction.DEPOSIT_REORGED_AFTER_CREDIT,
                    target_user=deposit.user,
                    target=f"deposit:{deposit.pk}",
                    details={"chain": chain, "txid": deposit.txid, "height": height},
                )
                continue
            deposit.status = DepositStatus.ORPHANED
            deposit.save(update_fields=["status", "updated_at"])
        if ours is not None:
            ours.delete()
        dropped += 1
        if dropped > max_depth:
            raise ChainsError(ChainsErrorCode.CHAIN_UNAVAILABLE, f"Reorg deeper than {max_depth} blocks on {chain}; manual action needed.")
        height -= 1
    fork = ScannedBlock.objects.filter(chain=chain, height__lte=height).order_by("-height").first()
    cursor.height = height
    cursor.hash = fork.hash if fork else ""
    cursor.reorgs += 1
    cursor.save(update_fields=["height", "hash", "reorgs"])
    logger.warning("Reorg on %s: %s block(s) dropped, resuming after height %s", chain, dropped, height)
    return dropped


def deposits_scan(*, chain: str, adapter: ChainAdapter | None = None, max_blocks: int | None = None) -> ScanResult:
    """One scanner pass for ``chain``: check the cursor against the chain (reorg), scan new
    blocks (one transaction per block, cursor row locked), then refresh confirmations and
    credit what is final. Safe to run twice at once and after any crash."""
    adapter = adapter or adapter_for(chain)
    result = ScanResult(chain=chain)
    cursor = _cursor_init(chain, adapter)
    watch, addresses, assets = _watch(chain)
    head = adapter.head_height()
    result.head = head
    limit = max_blocks or kk99_setting("CHAIN_SCAN_MAX_BLOCKS")

    # 1. Is the block under the cursor still on the chain?
    with transaction.atomic():
        cursor = ChainCursor.objects.select_for_update().get(pk=cursor.pk)
        # The last block we scanned (not the cursor height: that may be a skipped Solana slot).
        last = ScannedBlock.objects.filter(chain=chain, height__lte=cursor.height).order_by("-height").first()
        if last is not None and adapter.block_hash(last.height) != last.hash:
            _reorg_unwind(cursor=cursor, adapter=adapter)
            result.reorgs += 1

    # 2. Scan forward, one block per transaction.
    steps = 0
    while steps < limit:
        height = cursor.height + 1
        if height > head:
            break
        block = adapter.block(height, watch)
        with transaction.atomic():
            cursor = ChainCursor.objects.select_for_update().get(pk=cursor.pk)
            if cursor.height != height - 1:
                continue  # another scanner moved it; re-read and go on from there
            if block is not None and cursor.hash and block.parent_hash != cursor.hash:
                _reorg_unwind(cursor=cursor, adapter=adapter)
                result.reorgs += 1
                steps += 1
                continue
            if block is not None:
                ScannedBlock.objects.update_or_create(chain=chain, height=height, defaults={"hash": block.hash, "parent_hash": block.parent_hash})
                for transfer in block.transfers:
                    if _deposit_record(chain=chain, transfer=transfer, block_height=height, block_hash=block.hash, addresses=addresses, assets=assets):
                        result.recorded += 1
                cursor.hash = block.hash
            cursor.height = height
            cursor.save(update_fields=["height", "hash"])
            result.scanned += 1
            steps += 1
        fault_point("scan_after_block")

    # 3. Confirmations and crediting.
    final = adapter.final_height(head)
    for deposit in Deposit.objects.filter(chain=chain, status__in=[DepositStatus.DETECTED, DepositStatus.CONFIRMING]).order_by("block_height", "id"):
        confirmations = adapter.confirmations_for(deposit.block_height, head)
        if deposit.block_height <= min(final, cursor.height):
            if adapter.block_hash(deposit.block_height) == deposit.block_hash and deposit_credit(deposit_id=deposit.pk):
                result.credited += 1
            continue
        Deposit.objects.filter(pk=deposit.pk, status__in=[DepositStatus.DETECTED, DepositStatus.CONFIRMING]).update(
            confirmations=confirmations,
            status=DepositStatus.CONFIRMING if confirmations > 1 else DepositStatus.DETECTED,
            updated_at=timezone.now(),
        )
    ChainCursor.objects.filter(pk=cursor.pk).update(head_height=head, final_height=final, last_scan_at=timezone.now(), last_error="")
    result.height = cursor.height
    return result


def _deposit_split(deposit: Deposit) -> tuple[Decimal, Decimal, Decimal]:
    """(gross, fee, net) in the ledger's precision. The on-chain amount is truncated to the
    asset's precision (sub-precision dust is not credited); the fee is rounded half-up."""
    quantum = Decimal(1).scaleb(-deposit.asset.precision)
    gross = deposit.amount.quantize(quantum, rounding=ROUND_DOWN)
    fee = (gross * kk99_setting("DEPOSIT_FEE_RATE")).quantize(quantum, rounding=ROUND_HALF_UP)
    return gross, fee, gross - fee


def deposit_credit(*, deposit_id: int) -> bool:
    """Credit a final deposit, net of the deposit fee, in one transaction with its status.
    True if this call credited it; False if it was already credited (or not creditable)."""
    with transaction.atomic():
        deposit = Deposit.objects.select_for_update().select_related("asset", "chain_asset", "user").get(pk=deposit_id)
        if deposit.status not in (DepositStatus.DETECTED, DepositStatus.CONFIRMING):
            return False
        gross, fee, net = _deposit_split(deposit)
        if net <= 0 or gross < deposit.chain_asset.min_deposit:
            deposit.status = DepositStatus.IGNORED
            deposit.save(update_fields=["status", "updated_at"])
            return False
        legs = [
            Leg(deposit.user, deposit.asset, Bucket.AVAILABLE, net),
            Leg(SystemAccountKind.FEES, deposit.asset, Bucket.AVAILABLE, fee),
            Leg(SystemAccountKind.DEPOSITS_CLEARING, deposit.asset, Bucket.AVAILABLE, -gross),
        ]
        try:
            event = ledger_settle(
                idempotency_key=deposit.ledger_key,
                kind=JournalEventKind.DEPOSIT,
                legs=legs,
                memo=f"{deposit.chain} deposit {deposit.txid}:{deposit.index}",
                reference=f"deposit:{deposit.pk}",
            )
        except DuplicateLedgerEvent:  # credited by an earlier life of this row: never twice
            event = JournalEvent.objects.get(idempotency_key=deposit.ledger_key)
        else:
            balance_changed_publish(user_id=deposit.user_id, asset=deposit.asset, delta=net, reason="deposit", reference=f"deposit:{deposit.pk}")
        deposit.status = DepositStatus.CREDITED
        deposit.fee, deposit.credited_amount, deposit.journal_event = fee, net, event
        deposit.credited_at = timezone.now()
        deposit.save(update_fields=["status", "fee", "credited_amount", "journal_event", "credited_at", "updated_at"])
        audit_record(
            action=AuditAction.DEPOSIT_CREDITED,
            target_user=deposit.user,
            target=f"deposit:{deposit.pk}",
            details={"chain": deposit.chain, "txid": deposit.txid, "index": deposit.index, "asset": deposit.asset.symbol, "net": str(net), "fee": str(fee)},
        )
    return True


# --- withdrawals --------------------------------------------------------------------------------


def asset_value_usdt(*, symbol: str, amount: Decimal) -> Decimal:
    prices = kk99_setting("REFERENCE_PRICES_USDT")
    if symbol not in prices:
        raise ChainsError(ChainsErrorCode.WITHDRAWALS_DISABLED, f"No reference price for {symbol}; withdrawals are disabled.")
    return (amount * Decimal(prices[symbol])).quantize(Decimal("0.00000001"))


def _required_approvals(value: Decimal) -> int:
    """Approvals a withdrawal needs, given the user's rolling 24-hour total including it."""
    if value >= kk99_setting("WITHDRAWAL_DUAL_APPROVAL_THRESHOLD_USDT"):
        return 2
    if value >= kk99_setting("WITHDRAWAL_APPROVAL_THRESHOLD_USDT"):
        return 1
    return 0


def _withdrawn_today_usdt(user) -> Decimal:
    """USDT value of the user's withdrawals of the last 24 hours that still count (pending,
    approved, in flight or done — not rejected or failed)."""
    since = timezone.now() - timedelta(days=1)
    rows = Withdrawal.objects.filter(user=user, created_at__gte=since).exclude(status__in=[WithdrawalStatus.REJECTED, WithdrawalStatus.FAILED])
    return sum((w.value_usdt for w in rows), Decimal(0))


def _schedule_processing(withdrawal_id: int) -> None:
    """Queue signing after commit. ``robust``: the withdrawal is committed whatever happens
    here (broker down, an eager task failing while signing) — the error is logged, the request
    still answers with its record, and the beat task ``chains.withdrawals_process_all`` picks
    the approved withdrawal up later."""
    from wallets.chains.tasks import withdrawal_process_task

    transaction.on_commit(lambda: withdrawal_process_task.delay(withdrawal_id), robust=True)


def destination_check(*, chain: str, address: str) -> None:
    """Refuse destinations nothing can leave (zero/burn addresses) and the exchange's own
    addresses (any user's deposit address, the hot wallet): sending there would lose the
    coins or credit them to someone as a deposit. ``address`` is canonical."""
    if address_is_burn(chain=chain, address=address):
        raise ChainsError(
            ChainsErrorCode.DESTINATION_NOT_ALLOWED, "This is a burn (zero) address: coins sent there are lost.", chain=chain
        )
    lookup = {"address__iexact": address} if chain in (Chain.ETH, Chain.BTC) else {"address": address}
    if DepositAddress.objects.filter(chain=chain, **lookup).exists() or HotWallet.objects.filter(chain=chain, **lookup).exists():
        raise ChainsError(
            ChainsErrorCode.DESTINATION_NOT_ALLOWED,
            "This is one of the exchange's own addresses; withdraw to an address outside the exchange.",
            chain=chain,
        )


def _idempotency_key_check(key: str | None) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not key.isprintable():
        raise ChainsError(
            ChainsErrorCode.IDEMPOTENCY_KEY_INVALID,
            f"An idempotency key is 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable characters.",
        )
    return key


def _replay(*, user, key: str | None, chain_asset: ChainAsset, address: str, amount: Decimal) -> Withdrawal | None:
    """The withdrawal an earlier request with this key created (marked ``replayed``), or None.
    The same key for a different withdrawal is refused."""
    if key is None:
        return None
    existing = Withdrawal.objects.filter(user=user, idempotency_key=key).first()
    if existing is None:
        return None
    if (existing.chain_asset_id, existing.address, existing.amount) != (chain_asset.pk, address, amount):
        raise ChainsError(
            ChainsErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This idempotency key was already used for a different withdrawal.",
            status=409,
            withdrawal_id=existing.pk,
        )
    existing.replayed = True
    return existing


def withdrawal_request(
    *,
    user,
    chain_asset: ChainAsset,
    address: str,
    amount: Decimal | str,
    otp: str | None = None,
    idempotency_key: str | None = None,
    request: HttpRequest | None = None,
) -> Withdrawal:
    """Validate and record a withdrawal and hold ``amount + fee``. Small ones are approved at
    once (and queued for signing after commit); larger ones wait for staff.

    Review: the approvals needed come from the user's rolling 24-hour total (this withdrawal
    and every other not rejected/failed one) — splitting a large withdrawal does not skip the
    review. ``idempotency_key``: a retry with the same key returns the withdrawal the first
    call created (``replayed = True`` on the instance), never a second one; the key is unique
    per user in the database, and requests of one user are serialised on their user row."""
    from accounts.services import totp_verify

    key = _idempotency_key_check(idempotency_key)
    address = address_validate(chain=chain_asset.chain, address=address)
    amount = amount_quantize(chain_asset.asset, amount)
    replayed = _replay(user=user, key=key, chain_asset=chain_asset, address=address, amount=amount)
    if replayed is not None:
        return replayed
    if user.is_frozen or not user_can_withdraw(user=user):
        raise ChainsError(ChainsErrorCode.WITHDRAWALS_DISABLED, "This account may not withdraw.")
    asset = chain_asset.asset
    if not (chain_asset.is_active and asset.is_active and asset.withdraw_enabled and chain_enabled(chain_asset.chain)):
        raise ChainsError(ChainsErrorCode.WITHDRAWALS_DISABLED, f"Withdrawals of {asset.symbol} on {chain_asset.chain} are disabled.")
    destination_check(chain=chain_asset.chain, address=address)
    if whitelist_active(user=user) and withdrawal_address_usable(user=user, chain_asset=chain_asset, address=address) is None:
        raise ChainsError(
            ChainsErrorCode.ADDRESS_NOT_WHITELISTED,
            "Whitelist-only withdrawals are on: choose a confirmed address from your address book"
            f" (a new address can be used {kk99_setting('ADDRESS_BOOK_COOLING_OFF_HOURS')} hours after it was added).",
            status=403,
            chain=chain_asset.chain,
        )
    to_base_units(amount, chain_asset.decimals)  # representable on chain, or refused
    if amount < chain_asset.min_withdrawal:
        raise ChainsError(ChainsErrorCode.AMOUNT_BELOW_MINIMUM, f"The minimum is {chain_asset.min_withdrawal} {asset.symbol}.", minimum=str(chain_asset.min_withdrawal))
    if user.totp_enabled and not totp_verify(user=user, code=otp, request=request):
        raise ChainsError(ChainsErrorCode.SECOND_FACTOR_REQUIRED, "A valid 2FA code is required.")
    fee = chain_asset.withdrawal_fee
    value = asset_value_usdt(symbol=asset.symbol, amount=amount + fee)
    with transaction.atomic():
        # One request per user at a time: the 24-hour sums and the idempotency key hold.
        # NO KEY UPDATE: conflicts with itself, not with rows that reference the user (orders…).
        get_user_model().objects.select_for_update(no_key=True).get(pk=user.pk)
        replayed = _replay(user=user, key=key, chain_asset=chain_asset, address=address, amount=amount)
        if replayed is not None:
            return replayed
        limit = kyc_limits(user=user)["daily_withdrawal_usdt"]
        window_total = _withdrawn_today_usdt(user) + value
        if window_total > limit:
            raise ChainsError(ChainsErrorCode.WITHDRAWAL_LIMIT_EXCEEDED, f"Your daily withdrawal limit is {limit} USDT.", limit=str(limit))
        required = _required_approvals(window_total)
        withdrawal = Withdrawal.objects.create(
            idempotency_key=key,
            user=user,
            asset=asset,
            chain_asset=chain_asset,
            chain=chain_asset.chain,
            address=address,
            amount=amount,
            fee=fee,
            value_usdt=value,
            required_approvals=required,
            status=WithdrawalStatus.PENDING_APPROVAL if required else WithdrawalStatus.APPROVED,
        )
        balance_hold(user=user, asset=asset, amount=amount + fee, idempotency_key=f"withdrawal:{withdrawal.pk}:hold", reference=f"withdrawal:{withdrawal.pk}")
        balance_changed_publish(
            user_id=user.pk, asset=asset, delta=-(amount + fee), locked_delta=amount + fee, reason="withdrawal_hold", reference=f"withdrawal:{withdrawal.pk}"
        )
        audit_record(
            action=AuditAction.WITHDRAWAL_REQUESTED,
            actor=user,
            target_user=user,
            target=f"withdrawal:{withdrawal.pk}",
            request=request,
            details={"asset": asset.symbol, "chain": withdrawal.chain, "amount": str(amount), "fee": str(fee), "address": address, "approvals": required},
        )
        if not required:
            _schedule_processing(withdrawal.pk)
    return withdrawal


def staff_may_approve_withdrawals(staff) -> bool:
    return bool(getattr(staff, "is_active", False) and getattr(staff, "is_staff", False) and staff.has_perm("chains.approve_withdrawal"))


def withdrawal_approve(*, withdrawal_id: int, staff, request: HttpRequest | None = None) -> Withdrawal:
    """One staff approval; the last one needed moves it to ``approved`` and queues signing."""
    if not staff_may_approve_withdrawals(staff):
        raise ChainsError(ChainsErrorCode.APPROVAL_NOT_ALLOWED, "Only authorised staff may approve withdrawals.")
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
        if withdrawal.status != WithdrawalStatus.PENDING_APPROVAL:
            raise ChainsError(ChainsErrorCode.INVALID_STATE, f"The withdrawal is {withdrawal.status}.")
        if withdrawal.user_id == staff.pk:
            raise ChainsError(ChainsErrorCode.APPROVAL_NOT_ALLOWED, "Nobody approves their own withdrawal.")
        if WithdrawalApproval.objects.filter(withdrawal=withdrawal, staff=staff).exists():
            raise ChainsError(ChainsErrorCode.APPROVAL_NOT_ALLOWED, "You have already approved this withdrawal; another staff member must.")
        WithdrawalApproval.objects.create(withdrawal=withdrawal, staff=staff)
        approvals = WithdrawalApproval.objects.filter(withdrawal=withdrawal).count()
        if approvals >= withdrawal.required_approvals:
            withdrawal.status = WithdrawalStatus.APPROVED
            withdrawal.save(update_fields=["status", "updated_at"])
            _schedule_processing(withdrawal.pk)
        audit_record(
            action=AuditAction.WITHDRAWAL_APPROVED,
            actor=staff,
            target_user=withdrawal.user,
            target=f"withdrawal:{withdrawal.pk}",
            request=request,
            details={"approvals": approvals, "required": withdrawal.required_approvals},
        )
    return withdrawal


def _release(withdrawal: Withdrawal, *, status: str, reason: str, actor=None, action: str, request=None) -> None:
    balance_release(
        user=withdrawal.user,
        asset=withdrawal.asset,
        amount=withdrawal.hold_amount,
        idempotency_key=f"withdrawal:{withdrawal.pk}:release",
        reference=f"withdrawal:{withdrawal.pk}",
    )
    balance_changed_publish(
        user_id=withdrawal.user_id,
        asset=withdrawal.asset,
        delta=withdrawal.hold_amount,
        locked_delta=-withdrawal.hold_amount,
        reason="withdrawal_release",
        reference=f"withdrawal:{withdrawal.pk}",
    )
    withdrawal.status = status
    withdrawal.failure_reason = reason[:500]
    withdrawal.completed_at = timezone.now()
    withdrawal.save(update_fields=["status", "failure_reason", "completed_at", "updated_at"])
    audit_record(action=action, actor=actor, target_user=withdrawal.user, target=f"withdrawal:{withdrawal.pk}", request=request, details={"reason": reason[:500]})


def withdrawal_reject(*, withdrawal_id: int, staff, reason: str, request: HttpRequest | None = None) -> Withdrawal:
    """Refuse a withdrawal not yet signed; the hold is released in the same transaction."""
    if not staff_may_approve_withdrawals(staff):
        raise ChainsError(ChainsErrorCode.APPROVAL_NOT_ALLOWED, "Only authorised staff may reject withdrawals.")
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().select_related("user", "asset").get(pk=withdrawal_id)
        if withdrawal.status not in (WithdrawalStatus.REQUESTED, WithdrawalStatus.PENDING_APPROVAL, WithdrawalStatus.APPROVED):
            raise ChainsError(ChainsErrorCode.INVALID_STATE, f"A {withdrawal.status} withdrawal cannot be rejected.")
        _release(withdrawal, status=WithdrawalStatus.REJECTED, reason=reason or "rejected", actor=staff, action=AuditAction.WITHDRAWAL_REJECTED, request=request)
    return withdrawal


@sensitive_variables()
def withdrawal_sign(*, withdrawal_id: int, adapter: ChainAdapter | None = None) -> Withdrawal:
    """Sign an approved withdrawal with the hot-wallet key from Vault and commit the signed
    bytes, txid and nonce (status ``signed``). Never signs anything not ``approved``."""
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().select_related("chain_asset").get(pk=withdrawal_id)
        if withdrawal.status != WithdrawalStatus.APPROVED:
            return withdrawal
        chain = withdrawal.chain
        adapter = adapter or adapter_for(chain)
        HotWallet.objects.get_or_create(chain=chain)
        hot = HotWallet.objects.select_for_update().get(chain=chain)  # one signer per chain at a time
        secret = hot_wallet_read(chain)
        if hot.address != secret["address"]:
            hot.address, hot.next_nonce = secret["address"], None
        nonce = adapter.next_nonce(secret["address"])
        if nonce is not None:
            nonce = max(nonce, hot.next_nonce or 0)
            hot.next_nonce = nonce + 1
        if chain == Chain.BTC:  # never spend coins a signed, unconfirmed withdrawal spends
            used: set[str] = set()
            for other in Withdrawal.objects.filter(chain=chain, status__in=[WithdrawalStatus.SIGNED, WithdrawalStatus.BROADCAST]).exclude(pk=withdrawal.pk):
                used.update(json.loads(other.nonce or "[]"))
            adapter.avoid_outpoints = frozenset(used)
        signed = adapter.sign_transfer(
            private_key=secret["private_key"],
            from_address=secret["address"],
            to=withdrawal.address,
            amount_base=to_base_units(withdrawal.amount, withdrawal.chain_asset.decimals),
            contract=withdrawal.chain_asset.contract,
            nonce=nonce,
        )
        hot.save()
        withdrawal.signed_tx, withdrawal.txid, withdrawal.nonce = signed.raw, signed.txid, signed.nonce
        withdrawal.status, withdrawal.signed_at = WithdrawalStatus.SIGNED, timezone.now()
        withdrawal.save(update_fields=["signed_tx", "txid", "nonce", "status", "signed_at", "updated_at"])
        audit_record(
            action=AuditAction.WITHDRAWAL_SIGNED,
            target_user=withdrawal.user,
            target=f"withdrawal:{withdrawal.pk}",
            details={"txid": signed.txid, "nonce": signed.nonce[:200]},
        )
    return withdrawal


def withdrawal_broadcast(*, withdrawal_id: int, adapter: ChainAdapter | None = None) -> Withdrawal:
    """Send the recorded signed transaction (again, if need be). Never signs."""
    withdrawal = Withdrawal.objects.get(pk=withdrawal_id)
    if withdrawal.status not in (WithdrawalStatus.SIGNED, WithdrawalStatus.BROADCAST) or not withdrawal.signed_tx:
        return withdrawal
    adapter = adapter or adapter_for(withdrawal.chain)
    try:
        adapter.broadcast(withdrawal.signed_tx)
    except TransactionExpired:
        with transaction.atomic():
            withdrawal = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
            if withdrawal.status in (WithdrawalStatus.SIGNED, WithdrawalStatus.BROADCAST) and not adapter.tx_state(withdrawal.txid).found:
                audit_record(
                    action=AuditAction.WITHDRAWAL_EXPIRED_RESIGN,
                    target_user=withdrawal.user,
                    target=f"withdrawal:{withdrawal.pk}",
                    details={"expired_txid": withdrawal.txid},
                )
                withdrawal.status, withdrawal.signed_tx, withdrawal.txid, withdrawal.nonce = WithdrawalStatus.APPROVED, "", "", ""
                withdrawal.save(update_fields=["status", "signed_tx", "txid", "nonce", "updated_at"])
        return withdrawal
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
        withdrawal.broadcast_attempts += 1
        fields = ["broadcast_attempts", "updated_at"]
        if withdrawal.status == WithdrawalStatus.SIGNED:
            withdrawal.status, withdrawal.broadcast_at = WithdrawalStatus.BROADCAST, timezone.now()
            fields += ["status", "broadcast_at"]
            audit_record(action=AuditAction.WITHDRAWAL_BROADCAST, target_user=withdrawal.user, target=f"withdrawal:{withdrawal.pk}", details={"txid": withdrawal.txid})
        withdrawal.save(update_fields=fields)
    return withdrawal


def withdrawal_process(*, withdrawal_id: int, adapter: ChainAdapter | None = None) -> Withdrawal:
    """Sign (if approved) then broadcast (if signed). The signature is committed before the
    broadcast; a crash between the two leaves ``signed``, and the next run broadcasts those bytes."""
    withdrawal_sign(withdrawal_id=withdrawal_id, adapter=adapter)
    fault_point("withdrawal_after_sign")
    return withdrawal_broadcast(withdrawal_id=withdrawal_id, adapter=adapter)


def withdrawal_complete(*, withdrawal_id: int) -> Withdrawal:
    """Debit the held funds: locked → WITHDRAWALS_CLEARING (amount) and FEES (fee)."""
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().select_related("user", "asset").get(pk=withdrawal_id)
        if withdrawal.status != WithdrawalStatus.CONFIRMED:
            return withdrawal
        legs = [
            Leg(withdrawal.user, withdrawal.asset, Bucket.LOCKED, -withdrawal.hold_amount),
            Leg(SystemAccountKind.WITHDRAWALS_CLEARING, withdrawal.asset, Bucket.AVAILABLE, withdrawal.amount),
            Leg(SystemAccountKind.FEES, withdrawal.asset, Bucket.AVAILABLE, withdrawal.fee),
        ]
        ledger_settle(
            idempotency_key=f"withdrawal:{withdrawal.pk}:complete",
            kind=JournalEventKind.WITHDRAWAL,
            legs=legs,
            memo=f"{withdrawal.chain} withdrawal {withdrawal.txid}",
            reference=f"withdrawal:{withdrawal.pk}",
        )
        balance_changed_publish(
            user_id=withdrawal.user_id,
            asset=withdrawal.asset,
            delta=Decimal(0),
            locked_delta=-withdrawal.hold_amount,
            reason="withdrawal_complete",
            reference=f"withdrawal:{withdrawal.pk}",
        )
        withdrawal.status, withdrawal.completed_at = WithdrawalStatus.COMPLETED, timezone.now()
        withdrawal.save(update_fields=["status", "completed_at", "updated_at"])
        audit_record(action=AuditAction.WITHDRAWAL_COMPLETED, target_user=withdrawal.user, target=f"withdrawal:{withdrawal.pk}", details={"txid": withdrawal.txid})
    return withdrawal


def withdrawal_fail(*, withdrawal_id: int, reason: str) -> Withdrawal:
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().select_related("user", "asset").get(pk=withdrawal_id)
        # Only a withdrawal whose transaction is out (signed / broadcast) can fail on chain. A
        # CONFIRMED one was final on chain — the coins are gone — so releasing its hold would pay
        # the user twice; a not-yet-signed one is rejected by staff, not failed.
        if withdrawal.status not in (WithdrawalStatus.SIGNED, WithdrawalStatus.BROADCAST):
            return withdrawal
        _release(withdrawal, status=WithdrawalStatus.FAILED, reason=reason, action=AuditAction.WITHDRAWAL_FAILED)
    return withdrawal


def withdrawal_track(*, withdrawal_id: int, adapter: ChainAdapter | None = None) -> Withdrawal:
    """Follow a broadcast withdrawal: confirmations; final → confirmed → completed; reverted →
    failed (hold released); unknown to the node for a while → re-broadcast the same bytes."""
    withdrawal = Withdrawal.objects.get(pk=withdrawal_id)
    if withdrawal.status not in (WithdrawalStatus.BROADCAST, WithdrawalStatus.CONFIRMED):
        return withdrawal
    adapter = adapter or adapter_for(withdrawal.chain)
    if withdrawal.status == WithdrawalStatus.BROADCAST:
        state = adapter.tx_state(withdrawal.txid)
        if not state.found:
            stale = timezone.now() - timedelta(seconds=kk99_setting("WITHDRAWAL_REBROADCAST_SECONDS"))
            if withdrawal.updated_at <= stale:
                withdrawal_broadcast(withdrawal_id=withdrawal_id, adapter=adapter)
            return Withdrawal.objects.get(pk=withdrawal_id)
        if state.success is False:
            return withdrawal_fail(withdrawal_id=withdrawal_id, reason="The transaction failed on chain.")
        with transaction.atomic():
            withdrawal = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
            if withdrawal.status != WithdrawalStatus.BROADCAST:
                return withdrawal
            withdrawal.confirmations, withdrawal.block_height = state.confirmations, state.block_height
            if state.success and state.final:
                withdrawal.status = WithdrawalStatus.CONFIRMED
            withdrawal.save(update_fields=["confirmations", "block_height", "status", "updated_at"])
    return withdrawal_complete(withdrawal_id=withdrawal_id)
