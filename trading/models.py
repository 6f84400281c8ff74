"""Trading: markets, orders, trades and the matching engine's per-market state.

Who writes what (the single-writer rule that makes the engine exactly-once):

* ``order_place`` (trading.services) *inserts* an :class:`Order` as ``PENDING_NEW`` together
  with its balance hold, and ``order_cancel`` only sets ``cancel_requested``.
* Everything else about an order — its ``engine_seq``, status, executed quantities, the hold it
  still has — is written by the engine that owns the market, in the same transaction as the
  trades, the ledger settlement and the :class:`EngineState` progress marker.

All money and quantities are ``NUMERIC(38, 18)`` Decimals; the engine converts them to integer
ticks (price / tick_size) and lots (quantity / step_size) exactly.
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from kk99.numbers import fmt_amount
from trading.markets import market_validate

ZERO = Decimal("0")


def money(**kwargs) -> models.DecimalField:
    """A NUMERIC(38, 18) column: every amount, price and quantity in this app."""
    return models.DecimalField(max_digits=38, decimal_places=18, **kwargs)


def _weekdays() -> list[int]:
    return [0, 1, 2, 3, 4]  # Monday..Friday (Python's date.weekday())


class Market(models.Model):
    class Status(models.TextChoices):
        TRADING = "TRADING", "Trading"
        HALT = "HALT", "Halted"
        BREAK = "BREAK", "Break"
        CANCEL_ONLY = "CANCEL_ONLY", "Cancel only"

    class AssetClass(models.TextChoices):
        CRYPTO = "CRYPTO", "Crypto"
        EQUITY = "EQUITY", "Equity"

    symbol = models.CharField(max_length=32, unique=True, help_text="Binance style, e.g. BTCUSDT.")
    base = models.ForeignKey("wallets.Asset", on_delete=models.PROTECT, related_name="base_markets")
    quote = models.ForeignKey("wallets.Asset", on_delete=models.PROTECT, related_name="quote_markets")
    asset_class = models.CharField(max_length=8, choices=AssetClass.choices, default=AssetClass.CRYPTO)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRADING)

    # Filters (Binance PRICE_FILTER / LOT_SIZE / NOTIONAL).
    tick_size = money(help_text="Price increment (PRICE_FILTER.tickSize).")
    step_size = money(help_text="Quantity increment (LOT_SIZE.stepSize).")
    min_qty = money(help_text="LOT_SIZE.minQty")
    max_qty = money(help_text="LOT_SIZE.maxQty")
    min_notional = money(default=ZERO, help_text="NOTIONAL.minNotional, in the quote asset.")
    # Price band: limit prices must be within ±price_band_pct % of the reference price (the last
    # trade price, or reference_price before the first trade). Market buys by quantity hold
    # quantity × the band's ceiling and never pay more than it.
    price_band_pct = models.DecimalField(max_digits=9, decimal_places=4, default=Decimal("20"))
    reference_price = money(null=True, blank=True, help_text="Used for the price band until the first trade.")

    # Base fee rates (fractions, e.g. 0.001 = 0.1 %); 30-day volume tiers scale them
    # (settings.KK99["FEE_TIERS"]).
    maker_fee = models.DecimalField(max_digits=12, decimal_places=8, default=Decimal("0.001"))
    taker_fee = models.DecimalField(max_digits=12, decimal_places=8, default=Decimal("0.001"))

    # Trading calendar (equities only): sessions in session_timezone on session_weekdays,
    # closed on the ISO dates listed in holidays.
    session_timezone = models.CharField(max_length=64, default="UTC")
    session_open = models.TimeField(null=True, blank=True)
    session_close = models.TimeField(null=True, blank=True)
    session_weekdays = models.JSONField(default=_weekdays, blank=True, help_text="0=Monday … 6=Sunday")
    holidays = models.JSONField(default=list, blank=True, help_text='ISO dates, e.g. ["2026-12-25"]')

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(condition=Q(tick_size__gt=0) & Q(step_size__gt=0), name="market_increments_positive"),
            models.CheckConstraint(condition=Q(min_qty__gt=0) & Q(max_qty__gte=models.F("min_qty")), name="market_qty_bounds"),
            models.CheckConstraint(condition=~Q(base=models.F("quote")), name="market_base_differs_from_quote"),
        ]

    def __str__(self) -> str:
        return self.symbol

    @property
    def display_symbol(self) -> str:
        return f"{self.base.symbol}/{self.quote.symbol}"

    def clean(self) -> None:
        market_validate(market=self)


class Order(models.Model):
    class Side(models.TextChoices):
        BUY = "BUY"
        SELL = "SELL"

    class Type(models.TextChoices):
        LIMIT = "LIMIT"
        LIMIT_MAKER = "LIMIT_MAKER"
        MARKET = "MARKET"
        STOP_LOSS = "STOP_LOSS"
        STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
        TAKE_PROFIT = "TAKE_PROFIT"
        TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"

    class TimeInForce(models.TextChoices):
        GTC = "GTC"
        IOC = "IOC"
        FOK = "FOK"

    class Status(models.TextChoices):
        PENDING_NEW = "PENDING_NEW", "Pending (accepted, not yet in the engine)"
        PENDING_TRIGGER = "PENDING_TRIGGER", "Waiting for its stop price"
        NEW = "NEW"
        PARTIALLY_FILLED = "PARTIALLY_FILLED"
        FILLED = "FILLED"
        CANCELED = "CANCELED"
        REJECTED = "REJECTED"
        EXPIRED = "EXPIRED"
        EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"

    class StpMode(models.TextChoices):
        NONE = "NONE"
        EXPIRE_TAKER = "EXPIRE_TAKER"
        EXPIRE_MAKER = "EXPIRE_MAKER"
        EXPIRE_BOTH = "EXPIRE_BOTH"
        DECREMENT = "DECREMENT"

    class SideEffect(models.TextChoices):
        """Binance ``sideEffectType`` of a margin order (docs/margin.md): MARGIN_BUY borrows
        the shortfall of the hold in the same transaction as the order; AUTO_REPAY repays the
        loan in the received asset from the proceeds once the order is final."""

        NO_SIDE_EFFECT = "NO_SIDE_EFFECT"
        MARGIN_BUY = "MARGIN_BUY"
        AUTO_REPAY = "AUTO_REPAY"

    OPEN_STATUSES = (Status.PENDING_NEW, Status.PENDING_TRIGGER, Status.NEW, Status.PARTIALLY_FILLED)
    RESTING_STATUSES = (Status.NEW, Status.PARTIALLY_FILLED)
    FINAL_STATUSES = (Status.FILLED, Status.CANCELED, Status.REJECTED, Status.EXPIRED, Status.EXPIRED_IN_MATCH)
    STOP_TYPES = (Type.STOP_LOSS, Type.STOP_LOSS_LIMIT, Type.TAKE_PROFIT, Type.TAKE_PROFIT_LIMIT)
    LIMIT_TYPES = (Type.LIMIT, Type.LIMIT_MAKER, Type.STOP_LOSS_LIMIT, Type.TAKE_PROFIT_LIMIT)

    # No single-column FK indexes (migration 0003): user_id and market_id lead the composite
    # indexes below, held_asset_id is only read when an asset is deleted (PROTECT, never).
    # Fewer indexes = a cheaper INSERT per order; fillfactor 80 leaves room for HOT updates.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", db_index=False)
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="orders", db_index=False)
    client_order_id = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=20, choices=Type.choices)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.GTC)
    price = money(null=True, blank=True)
    stop_price = money(null=True, blank=True)
    quantity = money(null=True, blank=True, help_text="Base quantity; null for a market buy by quote amount.")
    quote_order_qty = money(null=True, blank=True, help_text="Market buy by quote amount.")
    # Market buys by quantity never pay more than this per unit (the price band's ceiling at
    # placement); quantity × protection_price is what they hold.
    protection_price = money(null=True, blank=True)
    executed_qty = money(default=ZERO)
    cumulative_quote_qty = money(default=ZERO)
    prevented_qty = money(default=ZERO, help_text="Quantity removed by self-trade prevention (DECREMENT).")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING_NEW)
    stp_mode = models.CharField(max_length=16, choices=StpMode.choices, default=StpMode.NONE)
    # The owner's STP trade group when the order was placed (Binance tradeGroupId; trading.stp):
    # orders of one group prevent matches with each other as if they had one owner.
    trade_group_id = models.BigIntegerField(null=True, blank=True)

    # The hold taken at placement (held_amount) and what is still held (held_remaining).
    # Invariant: a user's locked balance of an asset == sum(held_remaining) of their open orders.
    held_asset = models.ForeignKey("wallets.Asset", on_delete=models.PROTECT, related_name="+", db_index=False)
    held_amount = money()
    held_remaining = money()

    # The engine's own sequence: assigned when the engine takes the order (and again when a
    # stop triggers). Book priority and rebuild follow it — never the insert id.
    engine_seq = models.BigIntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    reject_reason = models.CharField(max_length=64, blank=True, default="")

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    working_at = models.DateTimeField(null=True, blank=True, help_text="When the order reached the book.")
    triggered_at = models.DateTimeField(null=True, blank=True)

    # Margin (issue 12): the ledger account the order holds in and settles to — null means the
    # user's spot account; a margin order names the user's cross or isolated margin account.
    ledger_account = models.ForeignKey("wallets.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False)
    side_effect_type = models.CharField(max_length=16, choices=SideEffect.choices, default=SideEffect.NO_SIDE_EFFECT)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "client_order_id"], name="order_client_id_unique_per_user"),
            models.UniqueConstraint(fields=["market", "engine_seq"], name="order_engine_seq_unique_per_market"),
            models.CheckConstraint(condition=Q(held_remaining__gte=0) & Q(held_remaining__lte=models.F("held_amount")), name="order_hold_within_bounds"),
            models.CheckConstraint(condition=Q(executed_qty__gte=0) & Q(cumulative_quote_qty__gte=0), name="order_executed_non_negative"),
        ]
        indexes = [
            models.Index(fields=["market", "status", "id"], name="order_market_status"),
            # market last: the pre-trade open-order counts (per account, per account and market)
            # are answered from this index alone (risk.selectors.pretrade_snapshot).
            models.Index(fields=["user", "status", "market"], name="order_user_status_market"),
            models.Index(fields=["user", "market", "-id"], name="order_user_market_recent"),
            models.Index(fields=["market"], condition=Q(cancel_requested=True), name="order_cancel_requests"),
            models.Index(fields=["ledger_account", "status"], condition=Q(ledger_account__isnull=False), name="order_margin_account_status"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.type} #{self.pk} {self.market_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_stop(self) -> bool:
        return self.type in self.STOP_TYPES

    @property
    def remaining_qty(self) -> Decimal | None:
        if self.quantity is None:
            return None
        return self.quantity - self.executed_qty - self.prevented_qty

    @property
    def display_status(self) -> str:
        """Binance's name: the internal PENDING_* states are NEW to the outside world."""
        return display_status(self.status)


def display_status(status: str) -> str:
    if status in (Order.Status.PENDING_NEW, Order.Status.PENDING_TRIGGER):
        return Order.Status.NEW
    return status


class TradeQuerySet(models.QuerySet):
    def of_user(self, user_id: int, *, since=None, self_trades: bool = True) -> TradeQuerySet:
        """The trades ``user_id`` was maker or taker of, in every account (spot and margin),
        from ``since`` on; ``self_trades=False`` leaves out those against themselves. The one
        query of "the user's trades since a time" (daily notional limit, 30-day fee tier);
        one account's fills for display are ``trading.selectors.fills_for_user``."""
        qs = self.filter(Q(maker_user_id=user_id) | Q(taker_user_id=user_id))
        if since is not None:
            qs = qs.filter(created_at__gte=since)
        if not self_trades:
            qs = qs.exclude(maker_user_id=models.F("taker_user_id"))
        return qs


class Trade(models.Model):
    # FK indexes only where a query needs them (migration 0003): market / users lead the
    # composite indexes below; fee assets are never filtered on.
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="trades", db_index=False)
    trade_id = models.BigIntegerField(help_text="Engine-assigned, per market, gap-free from 1.")
    engine_seq = models.BigIntegerField(help_text="engine_seq of the taker order that caused it.")
    price = money()
    qty = money()
    quote_qty = money()
    maker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="maker_trades")
    maker_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="maker_trades", db_index=False)
    taker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="taker_trades")
    taker_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="taker_trades", db_index=False)
    is_buyer_maker = models.BooleanField()
    maker_fee = money(default=ZERO)
    maker_fee_asset = models.ForeignKey("wallets.Asset", on_delete=models.PROTECT, related_name="+", db_index=False)
    taker_fee = money(default=ZERO)
    taker_fee_asset = models.ForeignKey("wallets.Asset", on_delete=models.PROTECT, related_name="+", db_index=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TradeQuerySet.as_manager()

    class Meta:
        ordering = ["market", "trade_id"]
        constraints = [
            models.UniqueConstraint(fields=["market", "trade_id"], name="trade_id_unique_per_market"),
        ]
        indexes = [
            models.Index(fields=["market", "created_at"], name="trade_market_time"),
            models.Index(fields=["maker_user", "created_at"], name="trade_maker_user_time"),
            models.Index(fields=["taker_user", "created_at"], name="trade_taker_user_time"),
        ]

    def __str__(self) -> str:
        return f"{self.market_id}#{self.trade_id} {fmt_amount(self.qty, 18)}@{fmt_amount(self.price, 18)}"

    def side_for(self, user_id: int) -> str:
        buyer_is_maker = self.is_buyer_maker
        if self.maker_user_id == user_id and self.taker_user_id != user_id:
            return Order.Side.BUY if buyer_is_maker else Order.Side.SELL
        return Order.Side.SELL if buyer_is_maker else Order.Side.BUY


class EngineState(models.Model):
    """One row per market: who owns it (epoch) and how far it has got.

    Every engine batch transaction updates this row ``WHERE epoch = <the engine's epoch>``;
    an engine that was deposed (a standby took the lock and bumped the epoch) updates 0 rows
    and rolls back instead of writing — the fence."""

    market = models.OneToOneField(Market, on_delete=models.CASCADE, primary_key=True, related_name="engine_state")
    epoch = models.BigIntegerField(default=0)
    owner = models.CharField(max_length=128, blank=True, default="")
    last_seq = models.BigIntegerField(default=0, help_text="Last engine_seq assigned.")
    last_trade_id = models.BigIntegerField(default=0)
    depth_update_id = models.BigIntegerField(default=0, help_text="Sequence of depth diffs (Binance lastUpdateId).")
    batch_count = models.BigIntegerField(default=0)
    last_price = money(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # Volatility halt (docs/halts.md): set while the market is paused, until the reopening
    # auction; band_since = trades before it do not count for the band (the last reopening).
    halted_until = models.DateTimeField(null=True, blank=True)
    band_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"EngineState({self.market_id}, epoch={self.epoch}, seq={self.last_seq})"


class FeePreference(models.Model):
    """A user's choice to pay trading fees in the KK99 token (issue 6, "The KK99 token").

    Opted in, each fill's fee is charged in KK99 at ``settings.KK99["KK99_FEE_DISCOUNT"]`` off
    — when the user's available KK99 covers it at batch time; otherwise the normal fee in the
    received asset (see docs/engine.md, "Fees"). No row = not opted in."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="fee_preference")
    pay_fees_in_kk99 = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"FeePreference({self.user_id}, kk99={self.pay_fees_in_kk99})"


class TradeGroup(models.Model):
    """Accounts under common control (Binance's ``tradeGroupId``): self-trade prevention treats
    them as one owner, and surveillance treats trades between them as self-dealing."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"TradeGroup {self.pk} {self.name}"


class TradeGroupMember(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="trade_group_membership")
    group = models.ForeignKey(TradeGroup, on_delete=models.CASCADE, related_name="members")

    def __str__(self) -> str:
        return f"{self.user_id} in {self.group_id}"


class PreventedMatch(models.Model):
    """A match that self-trade prevention stopped (Binance ``GET /api/v3/myPreventedMatches``).
    Written by the engine in the batch transaction."""

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+", db_index=False)
    taker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    maker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    taker_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    maker_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False, null=True)
    trade_group_id = models.BigIntegerField(null=True, blank=True)
    stp_mode = models.CharField(max_length=16, choices=Order.StpMode.choices)
    price = money()
    maker_prevented_qty = money()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["taker_user", "market", "id"], name="prevented_taker_user"),
            models.Index(fields=["maker_user", "market", "id"], name="prevented_maker_user"),
        ]


class VolatilityBand(models.Model):
    """Per-market circuit-breaker parameters (docs/halts.md). No row = no halts."""

    market = models.OneToOneField(Market, on_delete=models.CASCADE, primary_key=True, related_name="volatility_band")
    enabled = models.BooleanField(default=True)
    reference_minutes = models.PositiveIntegerField(default=5, help_text="N: the static band's reference is the mean trade price of the last N minutes.")
    static_pct = models.DecimalField(max_digits=9, decimal_places=4, default=Decimal("5"), help_text="Static (LULD-style) band: reference ± this %.")
    dynamic_minutes = models.PositiveIntegerField(default=60, help_text="W: the dynamic band uses the high/low of the last W minutes.")
    dynamic_pct = models.DecimalField(max_digits=9, decimal_places=4, default=Decimal("10"), help_text="Dynamic (CME-style) band: low − X % … high + X %.")
    pause_seconds = models.PositiveIntegerField(default=300, help_text="P: how long a halt lasts before the reopening auction.")

    def __str__(self) -> str:
        return f"VolatilityBand({self.market_id})"


class MarketHaltEvent(models.Model):
    """One transition of the volatility-halt state machine, with its reason (an audit row
    written in the engine batch that made the transition)."""

    class Kind(models.TextChoices):
        HALTED = "HALTED", "Halted"
        REOPENED = "REOPENED", "Reopened by auction"

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="halt_events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField()
    reason = models.CharField(max_length=128)
    band_low = money(null=True, blank=True)
    band_high = money(null=True, blank=True)
    price = money(null=True, blank=True, help_text="HALTED: the price that would have printed; REOPENED: the auction price.")
    qty = money(null=True, blank=True, help_text="REOPENED: the auction's executed volume.")
    order_id = models.BigIntegerField(null=True, blank=True, help_text="HALTED: the order whose print was stopped.")
    resume_at = models.DateTimeField(null=True, blank=True)
    engine_seq = models.BigIntegerField(help_text="EngineState.last_seq when the transition was made.")
    # REOPENED: the auction's trades are first_trade_id..last_trade_id (empty when last <
    # first: nothing crossed); the band restarts just before first_trade_id.
    first_trade_id = models.BigIntegerField(null=True, blank=True)
    last_trade_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["market", "id"]
        indexes = [models.Index(fields=["market", "-id"], name="halt_event_market_recent")]

    def __str__(self) -> str:
        return f"{self.market_id} {self.kind} {self.reason}"
