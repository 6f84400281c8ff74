"""The accounts back office: users (freeze, KYC tier), the KYC review queue, API keys (never
secrets) and the audit log (read-only). Every state-changing action goes through a service,
so it is audited exactly like the same action anywhere else."""
from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join

from accounts import services
from accounts.audit import AuditLog
from accounts.models import ApiKey, KycSubmission, User
from kk99.errors import KK99Error


class EmailVerifiedFilter(admin.SimpleListFilter):
    title = "email verified"
    parameter_name = "verified"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(email_verified_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(email_verified_at__isnull=True)
        return queryset


def _run(modeladmin, request, func, items, verb: str) -> None:
    done = 0
    for item in items:
        try:
            if func(item) is not False:
                done += 1
        except KK99Error as exc:
            modeladmin.message_user(request, f"{item}: {exc.message}", messages.ERROR)
    modeladmin.message_user(request, f"{verb}: {done}.", messages.SUCCESS)


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("email", "kyc_tier", "is_frozen", "email_verified_at", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = ("kyc_tier", "is_frozen", EmailVerifiedFilter, "is_staff", "is_active", "groups")
    search_fields = ("email",)
    ordering = ("-id",)
    fields = ("email", "is_active", "is_staff", "is_superuser", "groups", "kyc_tier", "is_frozen", "email_verified_at", "two_factor", "date_joined", "last_login")
    # Tier and freeze change only through the audited actions below.
    readonly_fields = ("email", "kyc_tier", "is_frozen", "email_verified_at", "two_factor", "date_joined", "last_login")
    filter_horizontal = ("groups",)
    actions = ["freeze", "unfreeze", "set_tier_0", "set_tier_1", "set_tier_2", "set_tier_3"]

    @admin.display(description="2FA", boolean=True)
    def two_factor(self, obj: User) -> bool:
        return obj.totp_enabled

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_superuser"]
        if obj is not None and obj.pk == request.user.pk:
            # Nobody changes their own roles or access (no self-promotion, no self-unlock).
            fields += [f for f in ("is_active", "is_staff", "is_superuser", "groups") if f not in fields]
        return fields

    def has_add_permission(self, request) -> bool:  # users sign up; staff are made with createsuperuser
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # accounts are frozen, never deleted
        return False

    def has_freeze_permission(self, request) -> bool:
        return request.user.has_perm("accounts.freeze_user")

    def has_tier_permission(self, request) -> bool:
        return request.user.has_perm("accounts.set_kyc_tier")

    @admin.action(description="Freeze selected accounts (no trading, no withdrawals)", permissions=["freeze"])
    def freeze(self, request, queryset: QuerySet[User]):
        _run(self, request, lambda u: services.user_freeze(user=u, actor=request.user, reason="admin action", request=request), queryset, "Frozen")

    @admin.action(description="Unfreeze selected accounts", permissions=["freeze"])
    def unfreeze(self, request, queryset: QuerySet[User]):
        _run(self, request, lambda u: services.user_unfreeze(user=u, actor=request.user, reason="admin action", request=request), queryset, "Unfrozen")

    def _set_tier(self, request, queryset, tier: int):
        _run(self, request, lambda u: services.user_set_kyc_tier(user=u, tier=tier, actor=request.user, request=request), queryset, f"Set to tier {tier}")

    @admin.action(description="Set KYC tier 0 (registered)", permissions=["tier"])
    def set_tier_0(self, request, queryset):
        self._set_tier(request, queryset, 0)

    @admin.action(description="Set KYC tier 1 (email verified)", permissions=["tier"])
    def set_tier_1(self, request, queryset):
        self._set_tier(request, queryset, 1)

    @admin.action(description="Set KYC tier 2 (identity verified)", permissions=["tier"])
    def set_tier_2(self, request, queryset):
        self._set_tier(request, queryset, 2)

    @admin.action(description="Set KYC tier 3 (enhanced)", permissions=["tier"])
    def set_tier_3(self, request, queryset):
        self._set_tier(request, queryset, 3)


@admin.register(KycSubmission)
class KycSubmissionAdmin(admin.ModelAdmin):
    """The review queue: pending first, oldest first."""

    list_display = ("id", "user", "requested_tier", "status", "full_name", "country", "submitted_at", "reviewed_by", "reviewed_at")
    list_filter = ("status", "requested_tier", "country")
    search_fields = ("user__email", "full_name", "id_number")
    list_select_related = ("user", "reviewed_by")
    ordering = ("status", "submitted_at")
    readonly_fields = (
        "user", "status", "requested_tier", "full_name", "date_of_birth", "country", "address", "id_number", "document_links",
        "submitted_at", "reviewed_at", "reviewed_by", "approved_tier", "reject_reason",
    )
    fields = readonly_fields
    actions = ["approve_tier_2", "approve_tier_3", "reject_submissions"]

    @admin.display(description="Documents")
    def document_links(self, obj: KycSubmission):
        return format_html_join(
            " · ", '<a href="{}">{} ({}, {} bytes)</a>',
            ((reverse("accounts:kyc_document", args=[d.pk]), d.get_kind_display(), d.content_type, d.size) for d in obj.documents.all()),
        ) or "—"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("accounts.review_kycsubmission")

    def _approve(self, request, queryset, tier: int):
        _run(self, request, lambda sub: services.kyc_approve(submission_id=sub.pk, tier=tier, reviewer=request.user, request=request), queryset, f"Approved at tier {tier}")

    @admin.action(description="Approve selected at tier 2 (identity verified)", permissions=["review"])
    def approve_tier_2(self, request, queryset):
        self._approve(request, queryset, 2)

    @admin.action(description="Approve selected at tier 3 (enhanced)", permissions=["review"])
    def approve_tier_3(self, request, queryset):
        self._approve(request, queryset, 3)

    @admin.action(description="Reject selected (asks for a reason)", permissions=["review"])
    def reject_submissions(self, request, queryset):
        if request.POST.get("confirm") == "yes":
            reason = request.POST.get("reason", "")
            _run(self, request, lambda sub: services.kyc_reject(submission_id=sub.pk, reason=reason, reviewer=request.user, request=request), queryset, "Rejected")
            return None
        context = {**self.admin_site.each_context(request), "submissions": queryset.select_related("user"), "opts": self.model._meta, "title": "Reject KYC submissions"}
        return TemplateResponse(request, "accounts/admin/kyc_reject.html", context)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("label", "user", "key_prefix", "permission_list", "ip_list", "created_at", "last_used_at", "revoked_at")
    list_filter = ("can_trade", "can_withdraw", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("user__email", "label", "key")
    list_select_related = ("user",)
    # The encrypted secret is never shown, not even encrypted.
    fields = ("user", "label", "key_prefix", "permission_list", "ip_list", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description="Key")
    def key_prefix(self, obj: ApiKey) -> str:
        return f"{obj.key[:8]}…"

    @admin.display(description="Permissions")
    def permission_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.permissions)

    @admin.display(description="IP allow-list")
    def ip_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.ip_allowlist) or "any"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("accounts.change_apikey")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke(self, request, queryset):
        _run(self, request, lambda key: services.api_key_revoke(api_key=key, actor=request.user, request=request), queryset, "Revoked")


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "actor", "target_user", "target", "ip")
    list_filter = ("action", ("created_at", admin.DateFieldListFilter))
    search_fields = ("actor__email", "target_user__email", "target", "ip")
    list_select_related = ("actor", "target_user")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "action", "actor", "target_user", "target", "ip", "user_agent", "details")
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
