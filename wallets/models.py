"""Wallets: assets and the double-entry ledger.

Four tables hold every unit of money (see ``docs/ledger.md``):

* :class:`Account` — whose money it is: one per user (created lazily) or one per
  :class:`SystemAccountKind` (fees, deposits clearing, …).
* :class:`Balance` — the current ``available`` and ``locked`` amount of one account in one
  asset. A cache of the journal that services keep in step under row locks; ``ledger_audit``
  proves it equals the sum of the entries.
* :class:`JournalEvent` — one business event (a deposit, a hold, a batch of trades …) with a
  unique idempotency key: applying the same event twice is refused by the database.
* :class:`JournalEntry` — the signed changes an event makes, one per (account, asset, bucket)
  leg. The entries of an event sum to zero per asset.

Sign rule: an entry's amount is the change of that account's bucket (+ increases, − decreases).
Since every event sums to zero per asset, the sum of all balances of an asset over all accounts
is always zero: user balances (never negative) are the exchange's liabilities, and the
counter-side of money that entered from outside sits, negative, on ISSUANCE /
DEPOSITS_CLEARING / ADJUSTMENTS.

Nothing here writes balances or entries: that is ``wallets.services``' job. Events and entries
are append-only (``save`` of an existing row and ``delete`` raise).
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

# NUMERIC(38, 18): 20 integer digits and 18 decimals, enough for wei-denominated assets.
AMOUNT_MAX_DIGITS = 38
AMOUNT_DECIMAL_PLACES = 18


class Asset(models.Model):
    """A currency or security the exchange holds. ``precision`` is the number of decimal
    places the ledger keeps for it; every amount is quantized to it."""

    symbol = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=64)
    precision = models.PositiveSmallIntegerField(default=8)
    is_active = models.BooleanField(default=True)
    deposit_enabled = models.BooleanField(default=True)
    withdraw_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [models.CheckConstraint(condition=models.Q(precision__lte=18), name="asset_precision_at_most_18")]

    def __str__(self) -> str:
        return self.symbol


class SystemAccountKind(models.TextChoices):
    """The exchange's own accounts. Each exists at most once (created on first use)."""

    ISSUANCE = "issuance", "Issuance (seeded / minted supply)"
    DEPOSITS_CLEARING = "deposits_clearing", "Deposits clearing (assets received from outside)"
    WITHDRAWALS_CLEARING = "withdrawals_clearing", "Withdrawals clearing (debited, not yet sent)"
    FEES = "fees", "Fees earned"
    ADJUSTMENTS = "adjustments", "Staff adjustments"
    # Margin (issue 12, docs/margin.md). All three hold real money and never go negative.
    LENDING_POOL = "lending_pool", "Margin lending pool (cash the exchange lends)"
    INTEREST_INCOME = "interest_income", "Margin interest income"
    INSURANCE_FUND = "insurance_fund", "Liquidation insurance fund"


# System accounts that stand for value outside the ledger may go negative: their negative
# balance is what entered the exchange. FEES and WITHDRAWALS_CLEARING hold real money the
# exchange owns or owes, so they obey the same ≥ 0 rule as users.
NEGATIVE_ALLOWED_KINDS = frozenset(
    {SystemAccountKind.ISSUANCE, SystemAccountKind.DEPOSITS_CLEARING, SystemAccountKind.ADJUSTMENTS}
)


class Bucket(models.TextChoices):
    AVAILABLE = "available", "Available"
    LOCKED = "locked", "Locked"


class JournalEventKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    HOLD = "hold", "Hold"
    RELEASE = "release", "Release"
    TRADE = "trade", "Trade settlement"
    FEE = "fee", "Fee"
    ADJUSTMENT = "adjustment", "Staff adjustment"
    TRANSFER = "transfer", "Transfer"
    ISSUANCE = "issuance", "Issuance"
    # Margin (issue 12): spot <-> margin transfers, loans and their interest, pool funding,
    # liquidations and insurance-fund movements.
    MARGIN_TRANSFER = "margin_transfer", "Margin transfer"
    BORROW = "borrow", "Margin borrow"
    REPAY = "repay", "Margin repay"
    INTEREST = "interest", "Margin interest"
    POOL_FUNDING = "pool_funding", "Lending pool funding"
    LIQUIDATION = "liquidation", "Liquidation"
    INSURANCE = "insurance", "Insurance fund"


class AccountPurpose(models.TextChoices):
    """What a user's ledger account is for. Every user has one SPOT account (the wallet of
    deposits, withdrawals and spot trading) and at most one cross-MARGIN account and one
    ISOLATED account per market (``isolated_symbol``) — see ``docs/margin.md``. System
    accounts are always SPOT."""

    SPOT = "spot", "Spot"
    MARGIN = "margin", "Cross margin"
    ISOLATED = "isolated", "Isolated margin"


class Account(models.Model):
    """Whose money: a user (one account per purpose — spot, cross margin, one isolated per
    market) or a system kind (exactly one each)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    purpose = models.CharField(max_length=10, choices=AccountPurpose.choices, default=AccountPurpose.SPOT)
    isolated_symbol = models.CharField(
        max_length=32, blank=True, default="", help_text="The market of an isolated margin account; blank otherwise."
    )
    system_kind = models.CharField(max_length=32, choices=SystemAccountKind.choices, null=True, blank=True, unique=True)
    allow_negative = models.BooleanField(
        default=False, help_text="Copied to each balance row; only counter-accounts for outside value may go negative."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(system_kind__isnull=True))
                | (Q(user__isnull=True) & Q(system_kind__isnull=False)),
                name="account_user_xor_system_kind",
            ),
            models.CheckConstraint(
                condition=Q(allow_negative=False) | Q(system_kind__isnull=False),
                name="account_only_system_may_go_negative",
            ),
            models.UniqueConstraint(
                fields=["user", "purpose", "isolated_symbol"],
                condition=Q(user__isnull=False),
                name="account_one_per_user_purpose_symbol",
            ),
            models.CheckConstraint(
                condition=(Q(purpose=AccountPurpose.ISOLATED) & ~Q(isolated_symbol=""))
                | (~Q(purpose=AccountPurpose.ISOLATED) & Q(isolated_symbol="")),
                name="account_isolated_symbol_iff_isolated",
            ),
            models.CheckConstraint(
                condition=Q(system_kind__isnull=True) | Q(purpose=AccountPurpose.SPOT),
                name="account_system_is_spot",
            ),
        ]

    @property
    def is_system(self) -> bool:
        return self.system_kind is not None

    @property
    def is_margin(self) -> bool:
        return self.purpose != AccountPurpose.SPOT

    def __str__(self) -> str:
        if self.system_kind:
            return f"system:{self.system_kind}"
        if self.purpose == AccountPurpose.MARGIN:
            return f"user:{self.user_id}:margin"
        if self.purpose == AccountPurpose.ISOLATED:
            return f"user:{self.user_id}:isolated:{self.isolated_symbol}"
        return f"user:{self.user_id}"


class Balance(models.Model):
    """The current amounts of one account in one asset. Written only by ``wallets.services``
    (under a row lock); the database refuses a negative amount unless ``allow_negative``."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="balances")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="balances")
    available = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, default=0)
    locked = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, default=0)
    allow_negative = models.BooleanField(default=False, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "asset_id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="balance_one_per_account_asset"),
            models.CheckConstraint(
                condition=Q(allow_negative=True) | (Q(available__gte=0) & Q(locked__gte=0)),
                name="balance_non_negative_unless_allowed",
            ),
        ]
        permissions = [("adjust_balance", "Can request a staff balance adjustment (applied on a second person's approval)")]

    @property
    def total(self):
        return self.available + self.locked

    def __str__(self) -> str:
        return f"{self.account} {self.asset_id}: {self.available} + {self.locked} locked"


class _AppendOnly(models.Model):
    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise RuntimeError(f"{type(self).__name__} rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__name__} rows are append-only.")


class JournalEvent(_AppendOnly):
    """One business event. ``idempotency_key`` is unique: the same event cannot apply twice."""

    kind = models.CharField(max_length=20, choices=JournalEventKind.choices, db_index=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    memo = models.CharField(max_length=500, blank=True)
    reference = models.CharField(
        max_length=100, blank=True, db_index=True, help_text="What caused it, e.g. 'order:42' or 'deposit:7'."
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.idempotency_key}"


class JournalEntry(_AppendOnly):
    """One signed change of one account's bucket in one asset."""

    event = models.ForeignKey(JournalEvent, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="entries")
    bucket = models.CharField(max_length=10, choices=Bucket.choices)
    amount = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "journal entries"
        indexes = [
            models.Index(fields=["account", "asset", "bucket"], name="entry_account_asset_bucket"),
            # a user's journal, newest first (the API's cursor pagination orders by -id)
            models.Index(fields=["account", "-id"], name="entry_account_newest_first"),
        ]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_non_zero")]

    def __str__(self) -> str:
        return f"{self.account} {self.bucket} {self.amount:+}"


class AdjustmentStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    APPROVED = "approved", "Approved and applied"
    REJECTED = "rejected", "Rejected"


class AdjustmentRequest(models.Model):
    """A manual balance adjustment: requested by one staff member, applied only when a
    *different* one approves it (the same two-person rule as KK99 supply changes).

    The database enforces the rule, not only the service: the approver is never the
    requester, neither of them is the adjusted user, and an approved request always names its
    approver and its journal event. The journal event is written only at approval, keyed
    ``adjustment:<id>`` — one request can apply at most once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, help_text="Positive credits, negative debits."
    )
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=AdjustmentStatus.choices, default=AdjustmentStatus.PENDING, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    request_key = models.CharField(
        max_length=200, unique=True, help_text="Submitting the same form or command twice creates one request."
    )
    journal_event = models.OneToOneField(JournalEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decision_note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("adjust_balance_approve", "Can approve or reject a balance adjustment another staff member requested")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="adjustment_amount_non_zero"),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requested_by")),
                name="adjustment_two_person_rule",
            ),
            models.CheckConstraint(condition=~Q(requested_by=models.F("user")), name="adjustment_not_own_account_requester"),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("user")),
                name="adjustment_not_own_account_approver",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status=AdjustmentStatus.PENDING, decided_by__isnull=True, journal_event__isnull=True)
                    | Q(status=AdjustmentStatus.APPROVED, decided_by__isnull=False, journal_event__isnull=False, decided_at__isnull=False)
                    | Q(status=AdjustmentStatus.REJECTED, decided_by__isnull=False, journal_event__isnull=True)
                ),
                name="adjustment_status_consistent",
            ),
        ]

    def __str__(self) -> str:
        return f"adjustment:{self.pk} {self.amount:+} {self.asset_id and self.asset.symbol} ({self.status})"

    @property
    def ledger_key(self) -> str:
        return f"adjustment:{self.pk}"
