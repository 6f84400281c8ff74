"""Admin: liquidations (in progress first, with their orders and fills) and the insurance fund
(balances and history). Registered from MarginConfig.ready (margin/apps.py)."""
from __future__ import annotations

from django.contrib import admin

from kk99.admin_numbers import MoneyAdmin

from margin.insurance import insurance_fund_balances
from margin.models import InsuranceFundEntry, Liquidation, LiquidationOrder
from wallets.models import SystemAccountKind


# --- liquidations and the insurance fund (margin.liquidation, margin.insurance) ----------------


class LiquidationOrderInline(MoneyAdmin, admin.TabularInline):
    model = LiquidationOrder
    extra = 0
    can_delete = False
    fields = ("order", "symbol", "side", "quantity", "limit_price", "mark", "bankruptcy_price", "liquidation_price", "executed", "avg_price", "status")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="executed")
    def executed(self, obj):
        return obj.order.executed_qty

    @admin.display(description="avg price")
    def avg_price(self, obj):
        o = obj.order
        return (o.cumulative_quote_qty / o.executed_qty) if o.executed_qty else None

    @admin.display(description="status")
    def status(self, obj):
        return obj.order.status


@admin.register(Liquidation)
class LiquidationAdmin(MoneyAdmin, admin.ModelAdmin):
    """Liquidations, in progress first: why, what was sold at which prices, fee, cover, bad debt.
    Read-only: only margin.liquidation changes them."""

    list_display = ("id", "account", "status", "reason", "margin_level", "step", "notional", "fee", "covered", "bad_debt", "started_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("account__user__email", "reason")
    ordering = ("-status", "-id")  # in_progress sorts after done alphabetically: reversed
    inlines = [LiquidationOrderInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Liquidation._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(InsuranceFundEntry)
class InsuranceFundAdmin(MoneyAdmin, admin.ModelAdmin):
    """The insurance fund: its balances (top of the list) and its history — every journal entry
    of the INSURANCE_FUND account (fees in, covers out, top-ups), newest first."""

    list_display = ("id", "created", "kind", "asset", "amount", "memo", "reference")
    list_filter = ("asset",)
    ordering = ("-id",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(account__system_kind=SystemAccountKind.INSURANCE_FUND).select_related("event", "asset")

    @admin.display(description="time")
    def created(self, obj):
        return obj.event.created_at

    @admin.display(description="kind")
    def kind(self, obj):
        return obj.event.kind

    @admin.display(description="memo")
    def memo(self, obj):
        return obj.event.memo

    @admin.display(description="reference")
    def reference(self, obj):
        return obj.event.reference

    def changelist_view(self, request, extra_context=None):
        balances = insurance_fund_balances()
        extra_context = {**(extra_context or {}), "title": "Insurance fund — " + (", ".join(f"{v.normalize():f} {k}" for k, v in sorted(balances.items())) or "empty")}
        return super().changelist_view(request, extra_context=extra_context)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
