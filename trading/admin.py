"""Admin: staff edit markets (a status change reaches the engine at once); orders, trades and
engine state are read-only."""
from __future__ import annotations

from django.contrib import admin
from kk99.admin_numbers import MoneyAdmin
from django.db import transaction

from trading.models import EngineState, Market, MarketHaltEvent, Order, Trade, VolatilityBand
from kk99.publish import markets_group, publish_on_commit
from trading.services import engine_notify


class VolatilityBandInline(MoneyAdmin, admin.StackedInline):
    """Circuit-breaker parameters (docs/halts.md); the engine picks a change up next batch."""

    model = VolatilityBand
    can_delete = True
    extra = 0
    max_num = 1


@admin.register(Market)
class MarketAdmin(MoneyAdmin, admin.ModelAdmin):
    inlines = (VolatilityBandInline,)
    list_display = ("symbol", "base", "quote", "asset_class", "status", "tick_size", "step_size", "maker_fee", "taker_fee")
    list_filter = ("status", "asset_class")
    search_fields = ("symbol",)
    list_editable = ("status",)
    fieldsets = (
        (None, {"fields": ("symbol", "base", "quote", "asset_class", "status")}),
        ("Filters", {"fields": ("tick_size", "step_size", "min_qty", "max_qty", "min_notional", "price_band_pct", "reference_price")}),
        ("Fees", {"fields": ("maker_fee", "taker_fee")}),
        ("Trading calendar (equities)", {"fields": ("session_timezone", "session_open", "session_close", "session_weekdays", "holidays")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # Increments and assets are fixed once a market exists: resting orders depend on them.
        return ("symbol", "base", "quote", "tick_size", "step_size") if obj else ()

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            engine_notify(symbol=obj.symbol)  # the engine re-reads the market every batch
            publish_on_commit("market.status", {"symbol": obj.symbol, "status": obj.status}, groups=[markets_group()])


class ReadOnlyAdmin(MoneyAdmin, admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "market", "side", "type", "price", "quantity", "executed_qty", "status", "engine_seq", "created_at")
    list_filter = ("status", "type", "side", "market")
    search_fields = ("=id", "client_order_id", "user__email")
    list_select_related = ("user", "market")
    date_hierarchy = "created_at"


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ("market", "trade_id", "price", "qty", "quote_qty", "maker_user", "taker_user", "is_buyer_maker", "created_at")
    list_filter = ("market",)
    search_fields = ("=trade_id", "=maker_order__id", "=taker_order__id", "maker_user__email", "taker_user__email")
    list_select_related = ("market", "maker_user", "taker_user")
    date_hierarchy = "created_at"


@admin.register(EngineState)
class EngineStateAdmin(ReadOnlyAdmin):
    list_display = ("market", "epoch", "owner", "last_seq", "last_trade_id", "depth_update_id", "last_price", "updated_at")


@admin.register(MarketHaltEvent)
class MarketHaltEventAdmin(ReadOnlyAdmin):
    list_display = ("market", "kind", "at", "reason", "band_low", "band_high", "price", "qty", "resume_at")
    list_filter = ("market", "kind")
    list_select_related = ("market",)
    date_hierarchy = "at"
