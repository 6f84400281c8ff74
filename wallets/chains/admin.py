"""Back office: deposit and withdrawal queues, approvals, reserves and scanner status."""
from __future__ import annotations

from django.contrib import admin, messages
from kk99.admin_numbers import MoneyAdmin
from django.template.response import TemplateResponse
from django.urls import path

from wallets.chains import selectors, services, token
from wallets.chains.errors import ChainsError
from wallets.chains.models import (
    ChainAsset,
    ChainCursor,
    Deposit,
    DepositAddress,
    HotWallet,
    TokenSupplyRequest,
    Withdrawal,
    WithdrawalAddress,
    WithdrawalApproval,
    WithdrawalStatus,
)


@admin.register(ChainAsset)
class ChainAssetAdmin(MoneyAdmin, admin.ModelAdmin):
    list_display = ("chain", "asset", "contract", "decimals", "min_deposit", "min_withdrawal", "withdrawal_fee", "is_active")
    list_filter = ("chain", "is_active")


@admin.register(DepositAddress)
class DepositAddressAdmin(admin.ModelAdmin):
    list_display = ("user", "chain", "address", "derivation_index", "created_at")
    list_filter = ("chain",)
    search_fields = ("address", "user__email")
    readonly_fields = [f.name for f in DepositAddress._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Deposit)
class DepositAdmin(MoneyAdmin, admin.ModelAdmin):
    list_display = ("id", "chain", "asset", "user", "amount", "credited_amount", "status", "confirmations", "block_height", "txid", "detected_at")
    list_filter = ("status", "chain", "asset")
    search_fields = ("txid", "address", "user__email")
    date_hierarchy = "detected_at"
    readonly_fields = [f.name for f in Deposit._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WithdrawalApprovalInline(admin.TabularInline):
    model = WithdrawalApproval
    extra = 0
    readonly_fields = ("staff", "created_at")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Withdrawal)
class WithdrawalAdmin(MoneyAdmin, admin.ModelAdmin):
    list_display = ("id", "chain", "asset", "user", "amount", "fee", "value_usdt", "status", "required_approvals", "approvals_count", "txid", "created_at")
    list_filter = ("status", "chain", "asset")
    search_fields = ("txid", "address", "user__email")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Withdrawal._meta.fields]
    inlines = [WithdrawalApprovalInline]
    actions = ["approve_selected", "reject_selected"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="approvals")
    def approvals_count(self, obj):
        return obj.approvals.count()

    @admin.action(description="Approve selected withdrawals", permissions=["approve"])
    def approve_selected(self, request, queryset):
        for withdrawal in queryset.filter(status=WithdrawalStatus.PENDING_APPROVAL):
            try:
                services.withdrawal_approve(withdrawal_id=withdrawal.pk, staff=request.user, request=request)
                self.message_user(request, f"Withdrawal {withdrawal.pk}: approval recorded.")
            except ChainsError as exc:
                self.message_user(request, f"Withdrawal {withdrawal.pk}: {exc.message}", level=messages.ERROR)

    @admin.action(description="Reject selected withdrawals (releases the funds)", permissions=["approve"])
    def reject_selected(self, request, queryset):
        for withdrawal in queryset:
            try:
                services.withdrawal_reject(withdrawal_id=withdrawal.pk, staff=request.user, reason="Rejected by staff in the admin.", request=request)
                self.message_user(request, f"Withdrawal {withdrawal.pk} rejected.")
            except ChainsError as exc:
                self.message_user(request, f"Withdrawal {withdrawal.pk}: {exc.message}", level=messages.ERROR)

    def has_approve_permission(self, request):
        return services.staff_may_approve_withdrawals(request.user)


@admin.register(ChainCursor)
class ChainCursorAdmin(admin.ModelAdmin):
    list_display = ("chain", "height", "head_height", "final_height", "lag", "reorgs", "last_scan_at", "last_error")
    readonly_fields = [f.name for f in ChainCursor._meta.fields]

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        return [path("reserves/", self.admin_site.admin_view(self.reserves_view), name="chains_reserves"), *super().get_urls()]

    def reserves_view(self, request):
        context = {**self.admin_site.each_context(request), "title": "Hot wallets vs ledger liabilities", "rows": selectors.reserves_report(), "cursors": selectors.cursor_status()}
        return TemplateResponse(request, "chains/admin/reserves.html", context)


@admin.register(HotWallet)
class HotWalletAdmin(admin.ModelAdmin):
    list_display = ("chain", "address", "next_nonce", "updated_at")
    readonly_fields = ("chain", "address", "next_nonce", "updated_at")


@admin.register(TokenSupplyRequest)
class TokenSupplyRequestAdmin(MoneyAdmin, admin.ModelAdmin):
    list_display = ("id", "kind", "amount", "holder", "status", "requested_by", "decided_by", "created_at")
    list_filter = ("status", "kind")
    fields = ("kind", "amount", "holder", "reason")
    raw_id_fields = ("holder",)
    actions = ["approve_selected", "reject_selected"]

    def get_readonly_fields(self, request, obj=None):
        return ("kind", "amount", "holder", "reason", "status", "requested_by", "decided_by") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            created = token.token_supply_request(staff=request.user, kind=obj.kind, amount=obj.amount, holder=obj.holder, reason=obj.reason, request=request)
            obj.pk = created.pk
        except ChainsError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)

    @admin.action(description="Approve (a different staff member than the requester)")
    def approve_selected(self, request, queryset):
        for supply in queryset:
            try:
                token.token_supply_approve(request_id=supply.pk, staff=request.user, request=request)
                self.message_user(request, f"Request {supply.pk} applied.")
            except ChainsError as exc:
                self.message_user(request, f"Request {supply.pk}: {exc.message}", level=messages.ERROR)

    @admin.action(description="Reject")
    def reject_selected(self, request, queryset):
        for supply in queryset:
            try:
                token.token_supply_reject(request_id=supply.pk, staff=request.user, reason="Rejected in the admin.", request=request)
            except ChainsError as exc:
                self.message_user(request, f"Request {supply.pk}: {exc.message}", level=messages.ERROR)



@admin.register(WithdrawalAddress)
class WithdrawalAddressAdmin(admin.ModelAdmin):
    """Users' withdrawal address books, for support: read-only (users add, confirm and
    remove entries themselves; every change is in the audit log)."""

    list_display = ("id", "user", "label", "chain", "asset", "address", "confirmed_at", "usable_from", "created_at")
    list_filter = ("chain",)
    search_fields = ("address", "label", "user__email")
    list_select_related = ("user", "asset")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
