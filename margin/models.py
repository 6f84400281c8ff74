"""Margin: accounts, the lending pool's terms, loans and their append-only history.

Money itself lives in the ledger (``wallets``): a margin account's balances are the
:class:`~wallets.models.Balance` rows of its :class:`~wallets.models.Account` (purpose
``margin`` or ``isolated``), the cash the exchange lends sits on the ``LENDING_POOL`` system
account, interest paid on ``INTEREST_INCOME``. This app adds what the ledger cannot say:

* :class:`MarginAccount` — the margin terms of one such ledger account (tier, portfolio
  margin, state and margin-call bookkeeping).
* :class:`MarginAsset` — per asset: may it be borrowed, and its collateral ratio (haircut).
* :class:`BorrowCap` — per asset and tier, the most one account may owe.
* :class:`InterestRate` — per asset and tier, the daily rate, with history (a new rate is a
  new row effective from a time; old rows are never edited).
* :class:`Loan` — what one account owes in one asset: ``principal`` and accrued ``interest``.
  A loan is NOT a negative balance.
* :class:`LoanEvent` — append-only: every change of a loan (borrow, repay, accrue, capitalise,
  writeoff), with its idempotency key and the journal event when money moved. ``Loan`` is the
  running sum of its events; ``margin.audit`` proves it.
* :class:`PoolFunding` — a two-person request that moves money into (or out of) the lending
  pool.

All amounts are NUMERIC(38, 18) Decimals quantized to the asset's precision.
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from wallets.models import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, JournalEntry


def amount_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs)


class MarginState(models.TextChoices):
    """States by margin level (thresholds per tier: settings ``KK99["MARGIN"]["TIERS"]``)."""

    NORMAL = "NORMAL", "Normal"
    NO_TRANSFER_OUT = "NO_TRANSFER_OUT", "No transfers out"
    NO_BORROW = "NO_BORROW", "No new borrowing"
    MARGIN_CALL = "MARGIN_CALL", "Margin call"
    LIQUIDATION = "LIQUIDATION", "Liquidation"


class MarginAccount(models.Model):
    """The margin terms of one cross or isolated ledger account (one cross per user, one
    isolated per user and market: the ledger account's unique (user, purpose, isolated_symbol)
    says so). Created by ``margin.services.margin_account_for``."""

    account = models.OneToOneField("wallets.Account", on_delete=models.PROTECT, related_name="margin")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="margin_accounts")
    tier = models.PositiveSmallIntegerField(default=1, help_text="Selects thresholds, caps and rates.")
    portfolio_margin = models.BooleanField(
        default=False, help_text="Maintenance from SPAN-style scenarios (margin.span) instead of the margin level."
    )
    state = models.CharField(
        max_length=16, choices=MarginState.choices, default=MarginState.NORMAL,
        help_text="Last state computed (margin.selectors.margin_state); a cache for lists and admin.",
    )
    margin_level = models.DecimalField(max_digits=38, decimal_places=8, null=True, blank=True, help_text="Last level computed.")
    state_at = models.DateTimeField(null=True, blank=True)
    margin_call_notified_at = models.DateTimeField(null=True, blank=True, help_text="Repeated every 24 h while in margin call.")
    liquidating = models.BooleanField(
        default=False, help_text="Set by the liquidation engine while it liquidates: no user orders, borrows or transfers out."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["state", "margin_level"], name="margin_account_by_level")]

    @property
    def is_isolated(self) -> bool:
        return bool(self.account.isolated_symbol)

    @property
    def symbol(self) -> str:
        return self.account.isolated_symbol

    def __str__(self) -> str:
        return f"margin:{self.pk} {self.account}"


class MarginAsset(models.Model):
    """Margin terms of an asset. An asset without a row can be neither borrowed nor count as
    collateral (fail closed)."""

    asset = models.OneToOneField("wallets.Asset", on_delete=models.PROTECT, related_name="margin_terms")
    borrowable = models.BooleanField(default=True)
    collateral_ratio = models.DecimalField(
        max_digits=6, decimal_places=4, default=Decimal("1"),
        help_text="Haircut: the share of the asset's USDT value that counts as collateral for borrowing (0..1).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset__symbol"]
        constraints = [
            models.CheckConstraint(condition=Q(collateral_ratio__gte=0) & Q(collateral_ratio__lte=1), name="margin_asset_ratio_0_1"),
        ]

    def __str__(self) -> str:
        return f"{self.asset} (ratio {self.collateral_ratio})"


class BorrowCap(models.Model):
    """The most one account of ``tier`` may owe in ``asset`` (principal + interest)."""

    asset = models.ForeignKey("wallets.Asset", on_delete=models.PROTECT, related_name="+")
    tier = models.PositiveSmallIntegerField(default=1)
    max_borrow = amount_field()

    class Meta:
        ordering = ["asset_id", "tier"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "tier"], name="borrow_cap_one_per_asset_tier"),
            models.CheckConstraint(condition=Q(max_borrow__gte=0), name="borrow_cap_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} tier {self.tier}: {self.max_borrow}"


class InterestRate(models.Model):
    """A daily interest rate of ``asset`` for ``tier``, in force from ``effective_from``. The
    rate at a time is the row with the latest ``effective_from`` not after it; rows are never
    edited (history, and Binance's interestRateHistory)."""

    asset = models.ForeignKey("wallets.Asset", on_delete=models.PROTECT, related_name="+")
    tier = models.PositiveSmallIntegerField(default=1)
    daily_rate = models.DecimalField(max_digits=20, decimal_places=12, help_text="e.g. 0.0002 = 0.02 % per day.")
    effective_from = models.DateTimeField(db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["asset_id", "tier", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "tier", "effective_from"], name="interest_rate_one_per_time"),
            models.CheckConstraint(condition=Q(daily_rate__gte=0) & Q(daily_rate__lt=1), name="interest_rate_sane"),
        ]

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise RuntimeError("Interest rates are history: add a new row instead of editing one.")
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.asset_id} tier {self.tier}: {self.daily_rate}/day from {self.effective_from:%Y-%m-%d %H:%M}"


class Loan(models.Model):
    """What one margin account owes in one asset. Kept in step with its :class:`LoanEvent`
    rows (same transaction, under this row's lock): principal = Σ event principal deltas,
    interest = Σ event interest deltas."""

    account = models.ForeignKey("wallets.Account", on_delete=models.PROTECT, related_name="loans")
    asset = models.ForeignKey("wallets.Asset", on_delete=models.PROTECT, related_name="+")
    principal = amount_field(default=0)
    interest = amount_field(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account_id", "asset_id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="loan_one_per_account_asset"),
            models.CheckConstraint(condition=Q(principal__gte=0) & Q(interest__gte=0), name="loan_non_negative"),
        ]

    @property
    def owed(self) -> Decimal:
        return self.principal + self.interest

    def __str__(self) -> str:
        return f"loan:{self.pk} {self.account} {self.asset_id}: {self.principal} + {self.interest}"


class LoanEventKind(models.TextChoices):
    BORROW = "borrow", "Borrow"  # principal +x; pool → account
    REPAY = "repay", "Repay"  # interest −i, principal −p; account → income, pool
    ACCRUE = "accrue", "Interest accrual"  # interest +x; no money moves
    CAPITALISE = "capitalise", "Interest capitalised"  # interest −x, principal +x; pool → income
    WRITEOFF = "writeoff", "Write-off"  # principal −p, interest −i; bad debt (liquidation)


class LoanEvent(models.Model):
    """One change of a loan (append-only). ``principal`` and ``interest`` are the signed
    changes it made; ``idempotency_key`` is unique (an hourly accrual is keyed by loan and hour,
    a borrow by the caller's key): the same change cannot apply twice."""

    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=12, choices=LoanEventKind.choices, db_index=True)
    principal = amount_field(default=0)
    interest = amount_field(default=0)
    idempotency_key = models.CharField(max_length=200, unique=True)
    journal_event = models.ForeignKey("wallets.JournalEvent", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    hour = models.DateTimeField(null=True, blank=True, help_text="The hour an accrual is for.")
    daily_rate = models.DecimalField(max_digits=20, decimal_places=12, null=True, blank=True, help_text="Rate of an accrual.")
    reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["loan", "-id"], name="loan_event_newest")]
        constraints = [
            models.CheckConstraint(condition=~(Q(principal=0) & Q(interest=0)), name="loan_event_non_zero"),
            models.UniqueConstraint(fields=["loan", "hour"], condition=Q(kind="accrue"), name="loan_event_one_accrual_per_hour"),
        ]

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise RuntimeError("LoanEvent rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("LoanEvent rows are append-only.")

    def __str__(self) -> str:
        return f"{self.kind} loan:{self.loan_id} principal {self.principal:+} interest {self.interest:+}"


class PoolFundingStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    APPROVED = "approved", "Approved and applied"
    REJECTED = "rejected", "Rejected"


class PoolFunding(models.Model):
    """Money into (+) or out of (−) the lending pool, from/to the ISSUANCE account (the
    exchange's own funds). Requested by one staff member, applied when a different one
    approves (the same two-person rule as balance adjustments)."""

    asset = models.ForeignKey("wallets.Asset", on_delete=models.PROTECT, related_name="+")
    amount = amount_field()
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=PoolFundingStatus.choices, default=PoolFundingStatus.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    journal_event = models.OneToOneField("wallets.JournalEvent", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("fund_pool", "Can request lending pool funding"), ("fund_pool_approve", "Can approve lending pool funding")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="pool_funding_non_zero"),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requested_by")), name="pool_funding_two_person_rule"
            ),
            models.CheckConstraint(
                condition=Q(status=PoolFundingStatus.PENDING, decided_by__isnull=True, journal_event__isnull=True)
                | Q(status=PoolFundingStatus.APPROVED, decided_by__isnull=False, journal_event__isnull=False)
                | Q(status=PoolFundingStatus.REJECTED, decided_by__isnull=False, journal_event__isnull=True),
                name="pool_funding_status_consistent",
            ),
        ]

    @property
    def ledger_key(self) -> str:
        return f"pool-funding:{self.pk}"

    def __str__(self) -> str:
        return f"pool-funding:{self.pk} {self.amount:+} ({self.status})"


# --- liquidations (margin.liquidation; docs/margin.md "Mark price, liquidation, insurance fund") ---


class LiquidationStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"


class Liquidation(models.Model):
    """One forced liquidation of a margin account: why (the margin level and the marks at the
    trigger, the liquidation prices shown then), what was sold (``orders``), the fee paid to
    the insurance fund, the shortfall the fund covered and the bad debt written off. Advanced
    one step per transaction by :func:`margin.liquidation.liquidation_advance` (``step``
    counts them and keys their ledger events). At most one in progress per account."""

    margin_account = models.ForeignKey(MarginAccount, on_delete=models.PROTECT, related_name="liquidations")
    account = models.ForeignKey("wallets.Account", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=12, choices=LiquidationStatus.choices, default=LiquidationStatus.IN_PROGRESS, db_index=True)
    reason = models.CharField(max_length=300)
    margin_level = models.DecimalField(max_digits=38, decimal_places=8, null=True, blank=True, help_text="At the trigger.")
    marks = models.JSONField(default=dict, help_text="Asset → mark price (USDT) at the trigger.")
    liquidation_prices = models.JSONField(default=dict, help_text="Market → the liquidation price shown at the trigger.")
    step = models.PositiveIntegerField(default=0)
    notional = amount_field(default=0, help_text="USDT value of everything the closing orders traded.")
    fee = amount_field(default=0, help_text="Liquidation fee paid to the insurance fund (USDT).")
    covered = models.JSONField(default=dict, help_text="Asset → shortfall covered by the insurance fund.")
    bad_debt = models.JSONField(default=dict, help_text="Asset → debt written off (the fund could not cover it).")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["account"], condition=Q(status="in_progress"), name="liquidation_one_in_progress_per_account"),
        ]

    def __str__(self) -> str:
        return f"liquidation:{self.pk} {self.account} ({self.status})"


class LiquidationOrder(models.Model):
    """One closing IOC order of a liquidation (Binance forceLiquidationRec reads these with
    their orders): what it asked for, at which limit, the mark, the bankruptcy price and the
    liquidation price shown to the user at the trigger."""

    liquidation = models.ForeignKey(Liquidation, on_delete=models.PROTECT, related_name="orders")
    order = models.OneToOneField("trading.Order", on_delete=models.PROTECT, related_name="liquidation_order")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    quantity = amount_field()
    limit_price = amount_field()
    mark = amount_field()
    bankruptcy_price = amount_field(null=True, blank=True)
    liquidation_price = amount_field(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"liquidation-order:{self.order_id} {self.side} {self.quantity} {self.symbol} @ {self.limit_price}"


class InsuranceFundEntry(JournalEntry):
    """The insurance fund's history for the admin: the journal entries of the INSURANCE_FUND
    system account (a proxy: the ledger is the one home of the money)."""

    class Meta:
        proxy = True
        verbose_name = "insurance fund entry"
        verbose_name_plural = "insurance fund"


class AutoRepay(models.Model):
    """An AUTO_REPAY margin order whose proceeds were applied (or found nothing to repay) —
    one row per order, so a later loan is never repaid from an old order's proceeds and the
    sweep never repays twice."""

    order = models.OneToOneField("trading.Order", primary_key=True, on_delete=models.PROTECT, related_name="+")
    loan_event = models.OneToOneField(LoanEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"auto-repay order:{self.order_id} → {self.loan_event_id or 'nothing'}"
