"""Risk's state: limits staff set, kill switches, and the nightly VaR/ES figures.

* :class:`RiskLimit` — one row per scope: an account on one market, an account on every
  market, or every account on one market. Each field left empty falls through to the next
  scope and finally to ``settings.KK99["RISK_DEFAULTS"]`` (:func:`risk.selectors.limits_for`).
* :class:`KillSwitch` — an engaged cancel-only / reduce-only switch for one account or one
  market. The row is its own audit trail (who engaged it, why, who released it, when).
* :class:`RiskFigure` — the VaR and ES the nightly job stored for one account (or, with no
  user, the whole exchange's custodial exposure), per horizon and confidence.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def _money(**kwargs):
    return models.DecimalField(max_digits=38, decimal_places=18, **kwargs)


class RiskLimit(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="risk_limits", help_text="Empty: every account.")
    market = models.ForeignKey("trading.Market", null=True, blank=True, on_delete=models.CASCADE, related_name="risk_limits", help_text="Empty: every market.")
    max_order_qty = _money(null=True, blank=True, help_text="Base units per order (meaningful with a market).")
    max_order_notional = _money(null=True, blank=True, help_text="Quote units per order.")
    price_collar_pct = models.DecimalField(max_digits=9, decimal_places=4, null=True, blank=True, help_text="A limit price at most this % from the reference price.")
    max_open_orders_per_market = models.PositiveIntegerField(null=True, blank=True, help_text="MAX_NUM_ORDERS.")
    max_open_orders = models.PositiveIntegerField(null=True, blank=True, help_text="Open orders on all markets.")
    orders_per_10s = models.PositiveIntegerField(null=True, blank=True)
    orders_per_day = models.PositiveIntegerField(null=True, blank=True)
    max_daily_notional = _money(null=True, blank=True, help_text="USDT value traded per UTC day, including the new order.")
    duplicate_window_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Refuse an identical order within this many ms (0 = off).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "market"], name="risk_limit_one_per_scope", violation_error_message="This account already has limits on this market."),
            models.UniqueConstraint(fields=["user"], condition=Q(market__isnull=True), name="risk_limit_one_per_account", violation_error_message="This account already has account-wide limits."),
            models.UniqueConstraint(fields=["market"], condition=Q(user__isnull=True), name="risk_limit_one_per_market", violation_error_message="This market already has limits for every account."),
            models.CheckConstraint(condition=Q(user__isnull=False) | Q(market__isnull=False), name="risk_limit_has_scope", violation_error_message="Choose an account, a market, or both."),
        ]

    def __str__(self) -> str:
        who = self.user.email if self.user_id else "every account"
        where = self.market.symbol if self.market_id else "every market"
        return f"limits: {who} on {where}"


class KillSwitch(models.Model):
    class Mode(models.TextChoices):
        CANCEL_ONLY = "CANCEL_ONLY", "Cancel only (no new orders)"
        REDUCE_ONLY = "REDUCE_ONLY", "Reduce only (sells of the base asset held)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="kill_switches")
    market = models.ForeignKey("trading.Market", null=True, blank=True, on_delete=models.PROTECT, related_name="kill_switches")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    reason = models.CharField(max_length=200, blank=True)
    engaged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    engaged_at = models.DateTimeField(default=timezone.now)
    cancelled_orders = models.PositiveIntegerField(default=0)
    released_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-engaged_at"]
        constraints = [
            models.CheckConstraint(condition=(Q(user__isnull=True) & Q(market__isnull=False)) | (Q(user__isnull=False) & Q(market__isnull=True)), name="kill_switch_one_scope"),
            models.UniqueConstraint(fields=["user"], condition=Q(released_at__isnull=True, user__isnull=False), name="kill_switch_one_active_per_account"),
            models.UniqueConstraint(fields=["market"], condition=Q(released_at__isnull=True, market__isnull=False), name="kill_switch_one_active_per_market"),
        ]

    @property
    def is_active(self) -> bool:
        return self.released_at is None

    def __str__(self) -> str:
        scope = self.user.email if self.user_id else self.market.symbol
        return f"{self.mode} on {scope}{'' if self.is_active else ' (released)'}"


class RiskFigure(models.Model):
    """One stored VaR/ES figure, positive USDT loss amounts."""

    as_of = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="risk_figures", help_text="Empty: exchange-wide.")
    horizon_days = models.PositiveSmallIntegerField()
    confidence = models.DecimalField(max_digits=5, decimal_places=4)
    exposure_usdt = _money()
    var_usdt = _money()
    es_usdt = _money()
    method = models.CharField(max_length=16, default="historical")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-as_of", "horizon_days", "confidence"]
        constraints = [
            models.UniqueConstraint(fields=["as_of", "user", "horizon_days", "confidence"], name="risk_figure_unique", nulls_distinct=False),
        ]
        indexes = [models.Index(fields=["user", "-as_of"], name="risk_figure_user_date")]

    def __str__(self) -> str:
        return f"{self.as_of} {'exchange' if self.user_id is None else self.user_id} {self.horizon_days}d {self.confidence}: VaR {self.var_usdt}"
