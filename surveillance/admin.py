"""The compliance desk: alerts, cases (workflow, freeze, export), thresholds with history.

Views only validate and call surveillance.services; every change is audited there."""
from __future__ import annotations

import csv
import io
import json

from django import forms
from django.contrib import admin, messages
from kk99.admin_numbers import MoneyAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from kk99.errors import KK99Error
from surveillance import services
from surveillance.detectors import DEFAULTS
from surveillance.models import (
    AccountLink,
    Alert,
    Case,
    CaseEvent,
    DetectorThreshold,
    DetectorThresholdChange,
    MarketMakerExemption,
)
from surveillance.selectors import alert_chart, case_export_rows
from trading.models import Order, Trade


def _evidence_rows(alert: Alert) -> tuple[list[Order], list[Trade]]:
    ev = alert.evidence or {}
    orders = list(Order.objects.filter(pk__in=ev.get("order_ids", [])[:200]).order_by("pk"))
    trades = list(Trade.objects.filter(pk__in=ev.get("trade_ids", [])[:200]).order_by("pk"))
    return orders, trades


@admin.register(Alert)
class AlertAdmin(MoneyAdmin, admin.ModelAdmin):
    list_display = ("short_key", "detector", "market", "severity", "score", "accounts", "window_start", "window_end", "case")
    list_filter = ("detector", "severity", "market", "case__state")
    search_fields = ("alert_key",)
    date_hierarchy = "window_end"
    list_select_related = ("market", "case")
    change_form_template = "surveillance/admin/alert_change_form.html"
    readonly_fields = [f.name for f in Alert._meta.fields]

    @admin.display(description="alert")
    def short_key(self, obj: Alert) -> str:
        return obj.alert_key[:12]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        alert = get_object_or_404(Alert, pk=object_id)
        orders, trades = _evidence_rows(alert)
        extra = {"chart": alert_chart(alert=alert), "evidence_orders": orders, "evidence_trades": trades, "book": alert.evidence.get("book", {}),
                 "figures": {k: v for k, v in alert.evidence.items() if k not in ("order_ids", "trade_ids", "book")}}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


class AlertInline(MoneyAdmin, admin.TabularInline):
    model = Alert
    fields = ("detector", "severity", "score", "accounts", "window_start", "window_end")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class CaseEventInline(admin.TabularInline):
    model = CaseEvent
    fields = ("created_at", "actor", "from_state", "to_state", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class TransitionForm(forms.Form):
    to_state = forms.ChoiceField(choices=Case.State.choices)
    reason = forms.CharField(required=False, max_length=500)


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "state", "assignee", "alert_count", "created_at", "updated_at")
    list_filter = ("state", "assignee", "alerts__detector", "alerts__market")
    search_fields = ("title",)
    readonly_fields = ("title", "state", "assignee", "reason", "created_at", "updated_at")
    inlines = [AlertInline, CaseEventInline]
    change_form_template = "surveillance/admin/case_change_form.html"

    @admin.display(description="alerts")
    def alert_count(self, obj: Case) -> int:
        return obj.alerts.count()

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/transition/", wrap(self.transition_view), name="surveillance_case_transition"),
            path("<int:pk>/freeze/", wrap(self.freeze_view), name="surveillance_case_freeze"),
            path("<int:pk>/export.<str:fmt>", wrap(self.export_view), name="surveillance_case_export"),
        ] + super().get_urls()

    def _may_work(self, request) -> bool:
        return request.user.has_perm("surveillance.work_case")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        case = get_object_or_404(Case, pk=object_id)
        first = case.alerts.order_by("pk").first()
        extra = {"transitions": Case.TRANSITIONS[case.state], "may_work": self._may_work(request), "case_accounts": services.case_accounts(case=case),
                 "chart": alert_chart(alert=first) if first else None}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def transition_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST" or not self._may_work(request):
            raise PermissionDenied
        case = get_object_or_404(Case, pk=pk)
        form = TransitionForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Choose a valid state.", messages.ERROR)
        else:
            try:
                services.case_transition(case=case, to_state=form.cleaned_data["to_state"], actor=request.user, reason=form.cleaned_data["reason"])
                self.message_user(request, f"Case {pk} is now {form.cleaned_data['to_state']}.", messages.SUCCESS)
            except KK99Error as exc:
                self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:surveillance_case_change", args=[pk]))

    def freeze_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST" or not (self._may_work(request) and request.user.has_perm("accounts.freeze_user")):
            raise PermissionDenied
        case = get_object_or_404(Case, pk=pk)
        try:
            frozen = services.case_freeze_accounts(case=case, actor=request.user, reason=request.POST.get("reason", ""))
            self.message_user(request, f"Frozen accounts: {frozen or 'none (already frozen)'}.", messages.SUCCESS)
        except KK99Error as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:surveillance_case_change", args=[pk]))

    def export_view(self, request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
        if not request.user.has_perm("surveillance.export_case"):
            raise PermissionDenied
        case = get_object_or_404(Case, pk=pk)
        rows = case_export_rows(case=case)
        if fmt == "json":
            body = {"case": {"id": case.pk, "title": case.title, "state": case.state, "reason": case.reason},
                    "events": [{"at": e.created_at.isoformat(), "actor": e.actor_id, "from": e.from_state, "to": e.to_state, "reason": e.reason} for e in case.events.all()],
                    "alerts": rows}
            response = HttpResponse(json.dumps(body, indent=2), content_type="application/json")
        elif fmt == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["case"])
            writer.writeheader()
            writer.writerows(rows)
            response = HttpResponse(out.getvalue(), content_type="text/csv")
        else:
            return HttpResponse("Unknown format (csv or json).", status=400, content_type="text/plain")
        response["Content-Disposition"] = f'attachment; filename="case-{case.pk}.{fmt}"'
        return response


class ThresholdForm(forms.ModelForm):
    reason = forms.CharField(required=False, max_length=300)

    class Meta:
        model = DetectorThreshold
        fields = ("detector", "market", "params")
        help_texts = {"params": "JSON object; parameters and defaults: " + json.dumps(DEFAULTS)}


class ThresholdHistoryInline(admin.TabularInline):
    model = DetectorThresholdChange
    fields = ("created_at", "actor", "old_params", "new_params", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DetectorThreshold)
class DetectorThresholdAdmin(admin.ModelAdmin):
    form = ThresholdForm
    list_display = ("detector", "market", "params", "updated_by", "updated_at")
    list_filter = ("detector", "market")
    inlines = [ThresholdHistoryInline]

    def get_readonly_fields(self, request, obj=None):
        return ("detector", "market") if obj else ()

    def save_model(self, request, obj, form, change):
        try:
            row = services.threshold_set(detector=obj.detector, market=obj.market, params=form.cleaned_data["params"] or {}, actor=request.user, reason=form.cleaned_data.get("reason", ""))
        except KK99Error as exc:
            raise forms.ValidationError(exc.message) from exc
        obj.pk = row.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AccountLink)
class AccountLinkAdmin(admin.ModelAdmin):
    list_display = ("user_a", "user_b", "source", "evidence", "created_at")
    list_filter = ("source",)
    raw_id_fields = ("user_a", "user_b")


class ExemptionRequestForm(forms.ModelForm):
    class Meta:
        model = MarketMakerExemption
        fields = ("user", "markets", "programme", "valid_from", "valid_to", "reason")


@admin.register(MarketMakerExemption)
class MarketMakerExemptionAdmin(admin.ModelAdmin):
    """Compliance files a registration (add); a second person approves or rejects it (the
    actions); anyone with the change permission can revoke an approved one. Every step goes
    through surveillance.services (two people, audited); rows are never edited or deleted."""

    form = ExemptionRequestForm
    list_display = ("id", "user", "programme", "market_list", "valid_from", "valid_to", "status", "requested_by", "approved_by")
    list_filter = ("status", "programme", "markets")
    search_fields = ("user__email", "programme")
    raw_id_fields = ("user",)
    actions = ("approve", "reject", "revoke")

    @admin.display(description="markets")
    def market_list(self, obj: MarketMakerExemption) -> str:
        return ", ".join(obj.markets.values_list("symbol", flat=True)) or "all markets"

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return [f.name for f in MarketMakerExemption._meta.fields] + ["markets"]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return  # read-only once filed: decisions go through the actions
        try:
            row = services.mm_exemption_request(
                user=form.cleaned_data["user"], markets=list(form.cleaned_data["markets"]), programme=form.cleaned_data["programme"],
                valid_from=form.cleaned_data["valid_from"], valid_to=form.cleaned_data["valid_to"], requested_by=request.user,
                reason=form.cleaned_data.get("reason", ""),
            )
        except KK99Error as exc:
            raise forms.ValidationError(exc.message) from exc
        obj.pk = row.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        pass  # the service set the markets

    def _decide(self, request, queryset, label: str, call) -> None:
        if not request.user.has_perm("surveillance.approve_marketmakerexemption"):
            raise PermissionDenied
        for exemption in queryset.order_by("pk"):
            try:
                call(exemption_id=exemption.pk, actor=request.user, reason=f"{label} in the admin")
                self.message_user(request, f"Exemption {exemption.pk} {label}.", messages.SUCCESS)
            except KK99Error as exc:
                self.message_user(request, f"Exemption {exemption.pk}: {exc.message}", messages.ERROR)

    @admin.action(description="Approve (a second person)")
    def approve(self, request, queryset):
        self._decide(request, queryset, "approved", services.mm_exemption_approve)

    @admin.action(description="Reject")
    def reject(self, request, queryset):
        self._decide(request, queryset, "rejected", services.mm_exemption_reject)

    @admin.action(description="Revoke (ends it now)")
    def revoke(self, request, queryset):
        self._decide(request, queryset, "revoked", services.mm_exemption_revoke)
