"""Chains: deposit addresses, scanner state, deposits, withdrawals and KK99 token supply requests.

Exactly-once is enforced by the database, not by memory:

* :class:`Deposit` is unique on ``(chain, txid, index)`` — a re-scan, a duplicate task or a
  replay after a crash finds the row and never inserts a second; its credit is a journal event
  keyed ``deposit:<chain>:<txid>:<index>``, itself unique in the ledger.
* :class:`Withdrawal` records the signed transaction and its nonce *before* broadcasting
  (``status = signed``); a retry re-broadcasts those bytes and never signs again.
* :class:`ScannedBlock` keeps each scanned block's hash and parent hash, so a reorg is seen
  when the chain's hash at a height differs from ours.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

from kk99.numbers import fmt_amount
from django.db.models import Q
from django.utils import timezone

from wallets.chains.chain import Chain
from wallets.models import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, Asset

# The longest client idempotency key a withdrawal accepts (a UUID is 36 characters).
IDEMPOTENCY_KEY_MAX_LENGTH = 100


def _amount(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs)


class ChainAsset(models.Model):
    """An asset as it exists on one chain: the native coin (``contract`` empty) or a token
    (ERC-20 / TRC-20 contract address). ``decimals`` is the chain's, not the ledger's."""

    chain = models.CharField(max_length=8, choices=Chain.choices)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="chain_assets")
    contract = models.CharField(max_length=64, blank=True, help_text="Empty for the chain's native coin.")
    decimals = models.PositiveSmallIntegerField()
    min_deposit = _amount(default=0)
    min_withdrawal = _amount(default=0)
    withdrawal_fee = _amount(default=0, help_text="The network fee charged to the user, in the asset.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["chain", "asset__symbol"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "asset"], name="chain_asset_unique"),
            models.UniqueConstraint(fields=["chain", "contract"], condition=~Q(contract=""), name="chain_asset_contract_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id and self.asset.symbol}@{self.chain}"

    @property
    def is_native(self) -> bool:
        return not self.contract


class DepositAddress(models.Model):
    """One deposit address per user per chain, derived from public material (see ``hd.py``).
    Tokens on a chain share the chain's address."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deposit_addresses")
    chain = models.CharField(max_length=8, choices=Chain.choices)
    address = models.CharField(max_length=100)
    derivation_index = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chain", "derivation_index"]
        constraints = [
            models.UniqueConstraint(fields=["user", "chain"], name="deposit_address_one_per_user_chain"),
            models.UniqueConstraint(fields=["chain", "address"], name="deposit_address_unique"),
            models.UniqueConstraint(fields=["chain", "derivation_index"], name="deposit_address_index_unique"),
        ]
        verbose_name_plural = "deposit addresses"

    def __str__(self) -> str:
        return f"{self.chain}:{self.address}"


class ChainCursor(models.Model):
    """How far the deposit scanner of a chain has got: the last scanned height and its hash."""

    chain = models.CharField(max_length=8, choices=Chain.choices, unique=True)
    height = models.BigIntegerField()
    hash = models.CharField(max_length=100, blank=True)
    head_height = models.BigIntegerField(null=True, blank=True, help_text="The node's head at the last scan.")
    final_height = models.BigIntegerField(null=True, blank=True, help_text="The highest final block at the last scan.")
    last_scan_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    reorgs = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["chain"]

    def __str__(self) -> str:
        return f"{self.chain}@{self.height}"

    @property
    def lag(self) -> int | None:
        return None if self.head_height is None else max(0, self.head_height - self.height)


class ScannedBlock(models.Model):
    """A block the scanner has processed: the reorg detector compares these hashes with the chain."""

    chain = models.CharField(max_length=8, choices=Chain.choices)
    height = models.BigIntegerField()
    hash = models.CharField(max_length=100)
    parent_hash = models.CharField(max_length=100, blank=True)
    scanned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chain", "-height"]
        constraints = [models.UniqueConstraint(fields=["chain", "height"], name="scanned_block_unique")]


class DepositStatus(models.TextChoices):
    DETECTED = "detected", "Detected"
    CONFIRMING = "confirming", "Confirming"
    CREDITED = "credited", "Credited"
    ORPHANED = "orphaned", "Orphaned (removed by a reorg)"
    IGNORED = "ignored", "Ignored (below the minimum)"


class Deposit(models.Model):
    """One incoming transfer to a deposit address: unique per (chain, txid, output/log index).

    ``index`` is the output number (BTC), the log index (ERC-20), the instruction index (SOL),
    0 for a TRON transaction, and -1 for the native value of an Ethereum transaction."""

    chain = models.CharField(max_length=8, choices=Chain.choices)
    txid = models.CharField(max_length=128)
    index = models.IntegerField()
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    chain_asset = models.ForeignKey(ChainAsset, on_delete=models.PROTECT, related_name="deposits")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deposits")
    address = models.CharField(max_length=100)
    from_address = models.CharField(max_length=100, blank=True, help_text="The sending address when the chain names one (surveillance links).")
    amount = _amount(help_text="Gross amount received on chain.")
    amount_base_units = models.CharField(max_length=80, help_text="Exactly as on chain (wei, satoshi, sun, lamport).")
    fee = _amount(default=0)
    credited_amount = _amount(default=0)
    block_height = models.BigIntegerField()
    block_hash = models.CharField(max_length=100)
    confirmations = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=12, choices=DepositStatus.choices, default=DepositStatus.DETECTED, db_index=True)
    journal_event = models.ForeignKey("wallets.JournalEvent", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    detected_at = models.DateTimeField(auto_now_add=True)
    credited_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "txid", "index"], name="deposit_unique_chain_txid_index")]
        indexes = [models.Index(fields=["chain", "status", "block_height"], name="deposit_chain_status_height")]

    def __str__(self) -> str:
        return f"{self.chain}:{self.txid}:{self.index}"

    @property
    def ledger_key(self) -> str:
        return f"deposit:{self.chain}:{self.txid}:{self.index}"


class WithdrawalStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    APPROVED = "approved", "Approved"
    SIGNED = "signed", "Signed (not yet broadcast)"
    BROADCAST = "broadcast", "Broadcast"
    CONFIRMED = "confirmed", "Confirmed"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


WITHDRAWAL_OPEN_STATUSES = (
    WithdrawalStatus.REQUESTED,
    WithdrawalStatus.PENDING_APPROVAL,
    WithdrawalStatus.APPROVED,
    WithdrawalStatus.SIGNED,
    WithdrawalStatus.BROADCAST,
    WithdrawalStatus.CONFIRMED,
)


class Withdrawal(models.Model):
    """A user's withdrawal. ``amount`` is what the recipient gets; ``fee`` the network fee charged;
    ``amount + fee`` is held from request until completion (debited) or failure/rejection
    (released)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawals")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    chain_asset = models.ForeignKey(ChainAsset, on_delete=models.PROTECT, related_name="withdrawals")
    chain = models.CharField(max_length=8, choices=Chain.choices)
    address = models.CharField(max_length=100)
    amount = _amount()
    fee = _amount(default=0)
    value_usdt = _amount(default=0, help_text="Valued at request time (KYC limit, approval thresholds).")
    status = models.CharField(max_length=20, choices=WithdrawalStatus.choices, default=WithdrawalStatus.REQUESTED, db_index=True)
    required_approvals = models.PositiveSmallIntegerField(default=0)
    nonce = models.CharField(max_length=2000, blank=True, help_text="ETH nonce, BTC spent outpoints, TRON/SOL reference block.")
    signed_tx = models.TextField(blank=True)
    txid = models.CharField(max_length=128, blank=True, db_index=True)
    broadcast_attempts = models.PositiveIntegerField(default=0)
    confirmations = models.PositiveIntegerField(default=0)
    block_height = models.BigIntegerField(null=True, blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        null=True,
        blank=True,
        help_text="The client's key (Idempotency-Key header / the form's token): a retry returns this withdrawal.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    broadcast_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("approve_withdrawal", "Can approve or reject withdrawals")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="withdrawal_amount_positive"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="withdrawal_fee_non_negative"),
            models.UniqueConstraint(fields=["chain", "txid"], condition=~Q(txid=""), name="withdrawal_txid_unique"),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="withdrawal_idempotency_key_unique_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"withdrawal:{self.pk} {fmt_amount(self.amount, 18)} {self.asset_id and self.asset.symbol} → {self.address}"

    @property
    def hold_amount(self):
        return self.amount + self.fee


class WithdrawalApproval(models.Model):
    withdrawal = models.ForeignKey(Withdrawal, on_delete=models.PROTECT, related_name="approvals")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["withdrawal", "staff"], name="withdrawal_approval_once_per_staff")]


class HotWallet(models.Model):
    """Per-chain signing state: the row is locked while a withdrawal is signed (one signer per
    chain at a time) and keeps the next nonce the exchange will use (ETH)."""

    chain = models.CharField(max_length=8, choices=Chain.choices, unique=True)
    address = models.CharField(max_length=100, blank=True)
    next_nonce = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"hot:{self.chain}:{self.address}"


class TokenSupplyKind(models.TextChoices):
    ISSUE = "issue", "Issue"
    BURN = "burn", "Burn"


class TokenSupplyStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    APPROVED = "approved", "Approved and applied"
    REJECTED = "rejected", "Rejected"


class TokenSupplyRequest(models.Model):
    """Issuance or burn of the internal KK99 token: requested by one staff member, applied only
    when a *different* one approves (two-person rule)."""

    kind = models.CharField(max_length=8, choices=TokenSupplyKind.choices)
    amount = _amount()
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", help_text="Whose balance is credited (issue) or debited (burn)."
    )
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=TokenSupplyStatus.choices, default=TokenSupplyStatus.PENDING, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    journal_event = models.ForeignKey("wallets.JournalEvent", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("approve_token_supply", "Can request and approve KK99 issuance and burns")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="token_supply_amount_positive"),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requested_by")),
                name="token_supply_two_person_rule",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {fmt_amount(self.amount, 18)} KK99 ({self.status})"


class WithdrawalAddress(models.Model):
    """An entry of a user's withdrawal address book: a destination on one network, for one
    asset (or, with ``asset`` empty, any asset of that network), with the user's label.

    In whitelist-only mode (:class:`AddressBookSettings`) a withdrawal may only go to an entry
    that is *usable*: confirmed from the link emailed when it was added, and past its
    cooling-off period (``usable_from`` = added + ``ADDRESS_BOOK_COOLING_OFF_HOURS``) — a
    stolen session cannot add an address and empty the account at once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="withdrawal_addresses")
    chain = models.CharField(max_length=8, choices=Chain.choices)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="Empty: any asset on this network.")
    address = models.CharField(max_length=100)  # canonical form (addresses.address_validate)
    label = models.CharField(max_length=60)
    created_at = models.DateTimeField(default=timezone.now)
    usable_from = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("label", "id")
        constraints = [
            models.UniqueConstraint(fields=("user", "chain", "address", "asset"), condition=Q(asset__isnull=False), name="withdrawal_address_unique_asset"),
            models.UniqueConstraint(fields=("user", "chain", "address"), condition=Q(asset__isnull=True), name="withdrawal_address_unique_any"),
        ]
        indexes = [models.Index(fields=("user", "chain"), name="withdrawal_address_user_chain")]

    def __str__(self) -> str:
        return f"{self.label} ({self.chain} {self.address})"

    def state(self, now=None) -> str:
        """``usable`` (confirmed and cooled off), ``unconfirmed`` or ``cooling`` — the rule
        :func:`wallets.chains.selectors.withdrawal_address_usable` applies in SQL."""
        if self.confirmed_at is None:
            return "unconfirmed"
        return "usable" if self.usable_from <= (now or timezone.now()) else "cooling"


class AddressBookSettings(models.Model):
    """A user's whitelist-only switch. Turning it on applies at once; turning it off applies
    only after the cooling-off period (``whitelist_off_at``), so a stolen session cannot lift
    the restriction and withdraw right away."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="address_book_settings")
    whitelist_only = models.BooleanField(default=False)
    whitelist_off_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "address book settings"

    def __str__(self) -> str:
        return f"{self.user} whitelist={'on' if self.whitelist_only else 'off'}"
