"""The ledger back office. Assets are editable (with the usual model permissions); accounts,
balances, events and entries are read-only — money moves only through the services.

Adjustments take two people, as on the command line (``ledger_adjust``): staff with
``wallets.adjust_balance`` get the "Adjust a balance" page, which only *requests* one
(``adjustment_request``); a different staff member with ``wallets.adjust_balance_approve``
approves (posts it) or rejects it from the adjustment requests list."""
from __future__ import annotations

from django.contrib import admin, messages
from kk99.admin_numbers import MoneyAdmin, money_text
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from kk99.errors import KK99Error
from wallets.forms import BalanceAdjustForm
from wallets.models import Account, AdjustmentRequest, AdjustmentStatus, Asset, Balance, JournalEntry, JournalEvent
from wallets.services import (
    adjustment_approve,
    adjustment_reject,
    adjustment_request,
    staff_may_approve_adjustment,
    staff_may_request_adjustment,
)


class ReadOnlyAdmin(MoneyAdmin, admin.ModelAdmin):
    """Viewable with the ``view_*`` permission; never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(MoneyAdmin, admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("symbol", "name", "precision", "is_active", "deposit_enabled", "withdraw_enabled")
    list_filter = ("is_active", "deposit_enabled", "withdraw_enabled")
    search_fields = ("symbol", "name")

    def get_readonly_fields(self, request, obj=None):
        # Once money exists in an asset its symbol and precision are part of the books.
        if obj is not None and obj.entries.exists():
            return ("symbol", "precision")
        return ()

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.entries.exists():
            return False
        return super().has_delete_permission(request, obj)


class AccountTypeFilter(admin.SimpleListFilter):
    title = "account type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [("user", "User"), ("system", "System")]

    def queryset(self, request, queryset):
        field = "account__system_kind" if queryset.model is not Account else "system_kind"
        if self.value() == "user":
            return queryset.filter(**{f"{field}__isnull": True})
        if self.value() == "system":
            return queryset.filter(**{f"{field}__isnull": False})
        return queryset


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "system_kind", "allow_negative", "created_at")
    list_filter = (AccountTypeFilter, "system_kind")
    search_fields = ("user__email",)
    list_select_related = ("user",)


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("account", "asset", "available", "locked", "total", "updated_at")
    list_filter = (AccountTypeFilter, "asset", "account__system_kind")
    search_fields = ("account__user__email", "asset__symbol")
    list_select_related = ("account", "account__user", "asset")
    actions = ["adjust_selected"]
    change_list_template = "wallets/admin/balance_change_list.html"

    @admin.display(description="total")
    def total(self, obj: Balance):
        return money_text(obj, "total", obj.available + obj.locked)

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        return staff_may_request_adjustment(request.user)

    @admin.action(description="Adjust the selected user balance…", permissions=["adjust"])
    def adjust_selected(self, request: HttpRequest, queryset: QuerySet[Balance]):
        rows = list(queryset.select_related("account__user", "asset")[:2])
        if len(rows) != 1 or rows[0].account.user is None:
            self.message_user(request, "Select exactly one user balance to adjust.", messages.ERROR)
            return None
        row = rows[0]
        query = urlencode({"email": row.account.user.email, "asset": row.asset.symbol})
        return HttpResponseRedirect(f"{reverse('admin:wallets_balance_adjust')}?{query}")

    def get_urls(self):
        urls = [path("adjust/", self.admin_site.admin_view(self.adjust_view), name="wallets_balance_adjust")]
        return urls + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_adjust": self.has_adjust_permission(request)}
        return super().changelist_view(request, extra_context)

    def adjust_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_adjust_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = BalanceAdjustForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    adjustment = adjustment_request(
                        staff=request.user,
                        user=data["user"],
                        asset=data["asset"],
                        amount=data["amount"],
                        reason=data["reason"],
                        request_key=data["idempotency_key"],
                        request=request,
                    )
                except KK99Error as exc:
                    form.add_error(None, exc.message)
                else:
                    self.message_user(
                        request,
                        f"Requested adjustment #{adjustment.pk}: {data['user'].email} {data['asset'].symbol} "
                        f"{data['amount']}. Another staff member must approve it before it applies.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:wallets_adjustmentrequest_change", args=[adjustment.pk]))
        else:
            form = BalanceAdjustForm(initial={k: v for k, v in request.GET.items() if k in ("email", "asset")})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Request a balance adjustment",
            "form": form,
        }
        return TemplateResponse(request, "wallets/admin/adjust.html", context)


class JournalEntryInline(ReadOnlyInline):
    model = JournalEntry
    fields = ("account", "asset", "bucket", "amount")
    readonly_fields = fields


@admin.register(JournalEvent)
class JournalEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "idempotency_key", "reference", "actor", "memo", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("idempotency_key", "reference", "memo", "entries__account__user__email")
    list_select_related = ("actor",)
    date_hierarchy = "created_at"
    inlines = [JournalEntryInline]

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "account", "asset", "bucket", "amount")
    list_filter = ("asset", "bucket", "event__kind", AccountTypeFilter)
    search_fields = ("account__user__email", "event__idempotency_key", "event__reference")
    list_select_related = ("event", "account", "account__user", "asset")


@admin.register(AdjustmentRequest)
class AdjustmentRequestAdmin(ReadOnlyAdmin):
    """Requests are made on the "Adjust a balance" page; here a second staff member approves
    (the journal event is posted then) or rejects them. Never edited."""

    list_display = ("id", "user", "asset", "amount", "status", "requested_by", "decided_by", "created_at", "decided_at")
    list_filter = ("status", "asset")
    search_fields = ("user__email", "requested_by__email", "reason")
    list_select_related = ("user", "asset", "requested_by", "decided_by")
    readonly_fields = (
        "user", "asset", "amount", "reason", "status", "requested_by", "decided_by", "journal_event",
        "decision_note", "created_at", "decided_at",
    )
    exclude = ("request_key",)
    actions = ["approve_selected", "reject_selected"]

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return staff_may_approve_adjustment(request.user)

    def _decide(self, request: HttpRequest, queryset: QuerySet[AdjustmentRequest], decide, verb: str) -> None:
        done = 0
        for adjustment in queryset.filter(status=AdjustmentStatus.PENDING).order_by("id"):
            try:
                decide(adjustment)
            except KK99Error as exc:
                self.message_user(request, f"#{adjustment.pk}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} adjustment(s).", messages.SUCCESS)

    @admin.action(description="Approve (apply) the selected adjustments", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[AdjustmentRequest]):
        self._decide(request, queryset, lambda a: adjustment_approve(adjustment_id=a.pk, staff=request.user, request=request), "Approved")

    @admin.action(description="Reject the selected adjustments", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[AdjustmentRequest]):
        self._decide(
            request,
            queryset,
            lambda a: adjustment_reject(adjustment_id=a.pk, staff=request.user, reason="Rejected in the admin.", request=request),
            "Rejected",
        )
