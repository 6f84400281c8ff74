"""Admin: editable limits, the kill switch (engage = add, release = an action; every change
audited through risk.killswitch), stored figures, and the risk dashboard
(``/admin/risk/riskfigure/dashboard/``)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from kk99.admin_numbers import MoneyAdmin
from django.template.response import TemplateResponse
from django.urls import path

from risk import killswitch, selectors
from risk.models import KillSwitch, RiskFigure, RiskLimit


@admin.register(RiskLimit)
class RiskLimitAdmin(MoneyAdmin, admin.ModelAdmin):
    list_display = ("__str__", "max_order_qty", "max_order_notional", "price_collar_pct", "max_open_orders_per_market", "max_open_orders", "orders_per_10s", "orders_per_day", "max_daily_notional", "duplicate_window_ms")
    list_filter = ("market",)
    search_fields = ("user__email", "market__symbol")
    raw_id_fields = ("user",)
    fieldsets = (
        ("Scope (leave one empty for every account / every market)", {"fields": ("user", "market")}),
        ("Per order", {"fields": ("max_order_qty", "max_order_notional", "price_collar_pct", "duplicate_window_ms")}),
        ("Open orders and rate", {"fields": ("max_open_orders_per_market", "max_open_orders", "orders_per_10s", "orders_per_day")}),
        ("Per day", {"fields": ("max_daily_notional",)}),
    )


class KillSwitchForm(forms.ModelForm):
    cancel_all = forms.BooleanField(required=False, initial=True, help_text="Also cancel every open order in the scope.")

    class Meta:
        model = KillSwitch
        fields = ("user", "market", "mode", "reason")

    def clean(self):
        data = super().clean()
        if bool(data.get("user")) == bool(data.get("market")):
            raise forms.ValidationError("Choose exactly one account or one market.")
        return data


@admin.register(KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    form = KillSwitchForm
    list_display = ("__str__", "mode", "engaged_by", "engaged_at", "cancelled_orders", "released_by", "released_at")
    list_filter = ("mode", ("released_at", admin.EmptyFieldListFilter))
    search_fields = ("user__email", "market__symbol", "reason")
    raw_id_fields = ("user",)
    actions = ["release"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("user", "market", "mode", "reason", "engaged_by", "engaged_at", "cancelled_orders", "released_by", "released_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "market", "mode", "reason", "cancel_all")
        return self.get_readonly_fields(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # the audit trail stays; release instead

    def save_model(self, request, obj, form, change):
        if change:
            return
        switch = killswitch.kill_switch_engage(
            actor=request.user, mode=obj.mode, user=obj.user, market=obj.market,
            cancel_all=form.cleaned_data.get("cancel_all", False), reason=obj.reason, request=request,
        )
        obj.pk, obj.engaged_by, obj.engaged_at, obj.cancelled_orders = switch.pk, switch.engaged_by, switch.engaged_at, switch.cancelled_orders
        messages.info(request, f"{switch}: {switch.cancelled_orders} open order(s) sent for cancel.")

    @admin.action(description="Release the selected kill switches")
    def release(self, request, queryset):
        released = 0
        for switch in queryset.filter(released_at__isnull=True):
            killswitch.kill_switch_release(actor=request.user, switch=switch, request=request)
            released += 1
        messages.info(request, f"Released {released} kill switch(es).")


@admin.register(RiskFigure)
class RiskFigureAdmin(MoneyAdmin, admin.ModelAdmin):
    list_display = ("as_of", "user", "horizon_days", "confidence", "exposure_usdt", "var_usdt", "es_usdt")
    list_filter = ("as_of", "horizon_days", "confidence")
    search_fields = ("user__email",)
    change_list_template = "risk/admin_figures_changelist.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="risk_dashboard"), *super().get_urls()]

    def dashboard_view(self, request):
        context = {
            **self.admin_site.each_context(request),
            "title": "Risk dashboard",
            "exchange": selectors.risk_figures_latest(user=None),
            "largest": selectors.largest_accounts_by_var(),
            "restricted": selectors.markets_restricted(),
            "switches": list(KillSwitch.objects.filter(released_at__isnull=True).select_related("user", "market")),
            "breaches": sorted(selectors.breaches_today().items(), key=lambda kv: -kv[1]),
            "defaults": selectors.default_limits().as_dict(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "risk/admin_dashboard.html", context)
