"""Margin back office: the lending pool's terms (borrowable assets and haircuts, caps per
tier, interest rates with history), pool funding (two people: one requests, another approves
from the list), margin accounts by margin level, loans and their events (read-only — money
and loans move only through ``margin.services``)."""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from kk99.admin_numbers import MoneyAdmin
from kk99.errors import KK99Error
from kk99.numbers import fmt_amount
from margin.models import BorrowCap, InterestRate, Loan, LoanEvent, MarginAccount, MarginAsset, PoolFunding, PoolFundingStatus
from margin.selectors import pool_overview
from margin.services import pool_funding_approve, pool_funding_reject, pool_funding_request
from margin.span_admin import SpanParamsAdminMixin
from wallets.admin import ReadOnlyAdmin


@admin.register(MarginAsset)
class MarginAssetAdmin(MoneyAdmin, admin.ModelAdmin):
    list_display = ("asset", "borrowable", "collateral_ratio", "updated_at")
    list_editable = ("borrowable", "collateral_ratio")


@admin.register(BorrowCap)
class BorrowCapAdmin(MoneyAdmin, admin.ModelAdmin):
    list_display = ("asset", "tier", "max_borrow")
    list_filter = ("tier",)


@admin.register(InterestRate)
class InterestRateAdmin(MoneyAdmin, admin.ModelAdmin):
    """Rates are history: add a row effective from a time; rows are never changed."""

    list_display = ("asset", "tier", "daily_rate", "effective_from", "created_by", "created_at")
    list_filter = ("tier", "asset")
    readonly_fields = ("created_by", "created_at")

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(MarginAccount)
class MarginAccountAdmin(SpanParamsAdminMixin, ReadOnlyAdmin):
    """Accounts by margin level (the last state computed by the ``margin.states_refresh`` task);
    its change list links the SPAN scenario parameters page (``margin.span_admin``)."""

    list_display = ("id", "user", "account", "tier", "portfolio_margin", "state", "margin_level", "liquidating", "margin_call_notified_at", "state_at")
    list_filter = ("state", "tier", "portfolio_margin", "liquidating")
    ordering = ("margin_level",)
    search_fields = ("user__email",)
    list_select_related = ("user", "account")


@admin.register(Loan)
class LoanAdmin(ReadOnlyAdmin):
    list_display = ("id", "account", "asset", "principal", "interest", "updated_at")
    list_filter = ("asset",)
    search_fields = ("account__user__email",)
    list_select_related = ("account", "asset")


@admin.register(LoanEvent)
class LoanEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "loan", "kind", "principal", "interest", "hour", "journal_event", "idempotency_key", "created_at")
    list_filter = ("kind",)
    search_fields = ("idempotency_key", "reference")
    list_select_related = ("loan", "journal_event")


@admin.register(PoolFunding)
class PoolFundingAdmin(MoneyAdmin, admin.ModelAdmin):
    """Request here (amount + reason); a different staff member approves with the action."""

    list_display = ("id", "asset", "amount", "status", "requested_by", "decided_by", "created_at", "decided_at")
    list_filter = ("status", "asset")
    fields = ("asset", "amount", "reason")
    actions = ("approve", "reject")

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        """The pool itself heads the list: per asset, held / lent out / interest owed."""
        lines = "; ".join(f"{p.asset}: {fmt_amount(p.available)} held, {fmt_amount(p.lent)} lent, {fmt_amount(p.interest_owed)} interest owed" for p in pool_overview())
        extra_context = {**(extra_context or {}), "title": "Lending pool — " + (lines or "empty")}
        return super().changelist_view(request, extra_context=extra_context)

    def save_model(self, request, obj, form, change) -> None:
        try:
            created = pool_funding_request(staff=request.user, asset=obj.asset, amount=obj.amount, reason=obj.reason, request=request)
        except KK99Error as exc:
            raise PermissionDenied(exc.message) from None  # a 403, nothing written
        obj.pk = created.pk

    def _decide(self, request: HttpRequest, queryset: QuerySet, decide) -> None:
        for funding in queryset.filter(status=PoolFundingStatus.PENDING):
            try:
                decide(funding_id=funding.pk, staff=request.user, request=request)
            except KK99Error as exc:
                self.message_user(request, f"#{funding.pk}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"#{funding.pk}: done.", messages.SUCCESS)

    @admin.action(description="Approve (a second staff member)")
    def approve(self, request, queryset):
        self._decide(request, queryset, pool_funding_approve)

    @admin.action(description="Reject")
    def reject(self, request, queryset):
        self._decide(request, queryset, pool_funding_reject)
