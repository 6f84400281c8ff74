"""The append-only audit log of security-relevant events.

``audit_record`` is the one way to write it. Rows are never updated or deleted by the
application (the model refuses), and the admin shows them read-only."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.http import HttpRequest

from accounts.network import client_ip


class AuditAction(models.TextChoices):
    LOGIN = "login", "Login"
    LOGIN_FAILED = "login_failed", "Login failed"
    LOGOUT = "logout", "Logout"
    REGISTER = "register", "Registered"
    EMAIL_VERIFIED = "email_verified", "Email verified"
    PASSWORD_RESET_REQUESTED = "password_reset_requested", "Password reset requested"
    PASSWORD_RESET = "password_reset", "Password reset"
    PASSWORD_CHANGED = "password_changed", "Password changed"
    TOTP_ENABLED = "totp_enabled", "2FA enabled"
    TOTP_DISABLED = "totp_disabled", "2FA disabled"
    TOTP_FAILED = "totp_failed", "2FA code refused"
    RECOVERY_CODE_USED = "recovery_code_used", "Recovery code used"
    API_KEY_CREATED = "api_key_created", "API key created"
    API_KEY_REVOKED = "api_key_revoked", "API key revoked"
    KYC_SUBMITTED = "kyc_submitted", "KYC submitted"
    KYC_APPROVED = "kyc_approved", "KYC approved"
    KYC_REJECTED = "kyc_rejected", "KYC rejected"
    KYC_DOCUMENT_VIEWED = "kyc_document_viewed", "KYC document viewed by staff"
    KYC_TIER_CHANGED = "kyc_tier_changed", "KYC tier changed by staff"
    BALANCE_ADJUSTED = "balance_adjusted", "Staff balance adjustment"
    ACCOUNT_FROZEN = "account_frozen", "Account frozen"
    ACCOUNT_UNFROZEN = "account_unfrozen", "Account unfrozen"
    STAFF_ACCESS_DENIED = "staff_access_denied", "Staff access denied"
    # Written by wallets.chains.
    DEPOSIT_CREDITED = "deposit_credited", "Deposit credited"
    DEPOSIT_REORGED_AFTER_CREDIT = "deposit_reorged_after_credit", "Deposit reorged after credit"
    WITHDRAWAL_REQUESTED = "withdrawal_requested", "Withdrawal requested"
    WITHDRAWAL_APPROVED = "withdrawal_approved", "Withdrawal approved"
    WITHDRAWAL_REJECTED = "withdrawal_rejected", "Withdrawal rejected"
    WITHDRAWAL_SIGNED = "withdrawal_signed", "Withdrawal signed"
    WITHDRAWAL_BROADCAST = "withdrawal_broadcast", "Withdrawal broadcast"
    WITHDRAWAL_EXPIRED_RESIGN = "withdrawal_expired_resign", "Expired withdrawal re-signed"
    WITHDRAWAL_COMPLETED = "withdrawal_completed", "Withdrawal completed"
    WITHDRAWAL_FAILED = "withdrawal_failed", "Withdrawal failed"
    TOKEN_SUPPLY_REQUESTED = "token_supply_requested", "KK99 supply change requested"
    TOKEN_SUPPLY_APPROVED = "token_supply_approved", "KK99 supply change approved"
    TOKEN_SUPPLY_REJECTED = "token_supply_rejected", "KK99 supply change rejected"
    # Written by operators through the ``kk99`` CLI (kk99/ops.py).
    MARKET_STATUS_CHANGED = "market_status_changed", "Market status changed by an operator"
    ENGINE_RUN = "engine_run", "Supervised engine run (kk99 engines run)"
    ENGINE_STARTED = "engine_started", "Engine started for a market"
    ENGINE_STANDBY_STARTED = "engine_standby_started", "Standby engine started for a market"
    ENGINE_STOPPED = "engine_stopped", "Engine stopped for a market"
    ENGINE_FAILOVER = "engine_failover", "Engine failover (owner session ended)"
    # The two-person balance adjustment (wallets/services.py; the approval is BALANCE_ADJUSTED).
    BALANCE_ADJUSTMENT_REQUESTED = "balance_adjustment_requested", "Balance adjustment requested"
    BALANCE_ADJUSTMENT_REJECTED = "balance_adjustment_rejected", "Balance adjustment rejected"
    # Withdrawal address book (wallets/chains/address_book.py).
    WITHDRAWAL_ADDRESS_ADDED = "withdrawal_address_added", "Withdrawal address added"
    WITHDRAWAL_ADDRESS_CONFIRMED = "withdrawal_address_confirmed", "Withdrawal address confirmed"
    WITHDRAWAL_ADDRESS_REMOVED = "withdrawal_address_removed", "Withdrawal address removed"
    WITHDRAWAL_WHITELIST_ENABLED = "withdrawal_whitelist_enabled", "Withdrawal whitelist enabled"
    WITHDRAWAL_WHITELIST_DISABLE_REQUESTED = "withdrawal_whitelist_disable_requested", "Withdrawal whitelist switch-off requested"
    # Margin (margin/services.py) and liquidation (margin/liquidation.py).
    MARGIN_TRANSFER = "margin_transfer", "Margin transfer"
    MARGIN_BORROW = "margin_borrow", "Margin borrow"
    MARGIN_REPAY = "margin_repay", "Margin repay"
    MARGIN_CALL = "margin_call", "Margin call"
    MARGIN_POOL_FUNDING_REQUESTED = "margin_pool_funding_requested", "Lending pool funding requested"
    MARGIN_POOL_FUNDING_APPROVED = "margin_pool_funding_approved", "Lending pool funding approved"
    MARGIN_POOL_FUNDING_REJECTED = "margin_pool_funding_rejected", "Lending pool funding rejected"
    LIQUIDATION_STARTED = "liquidation_started", "Liquidation started"
    LIQUIDATION_ORDERS_CANCELED = "liquidation_orders_canceled", "Liquidation: open orders cancelled"
    LIQUIDATION_REPAID = "liquidation_repaid", "Liquidation: loans repaid from holdings"
    LIQUIDATION_ORDERS_PLACED = "liquidation_orders_placed", "Liquidation: closing orders placed"
    LIQUIDATION_FEE = "liquidation_fee", "Liquidation fee to the insurance fund"
    LIQUIDATION_INSURANCE_COVER = "liquidation_insurance_cover", "Liquidation shortfall covered by the insurance fund"
    LIQUIDATION_BAD_DEBT = "liquidation_bad_debt", "Liquidation bad debt written off"
    LIQUIDATION_DONE = "liquidation_done", "Liquidation done"
    BACKUP_CREATED = "backup_created", "Backup created"
    BACKUP_RESTORED = "backup_restored", "Backup restored"
    LEDGER_AUDIT_RUN = "ledger_audit_run", "Ledger audit run by an operator"
    # Pre-trade risk (risk/killswitch.py).
    RISK_KILL_SWITCH_ENGAGED = "risk_kill_switch_engaged", "Kill switch engaged"
    RISK_KILL_SWITCH_RELEASED = "risk_kill_switch_released", "Kill switch released"
    # Market surveillance (surveillance/services.py).
    SURVEILLANCE_CASE = "surveillance_case", "Surveillance case moved"
    SURVEILLANCE_THRESHOLD = "surveillance_threshold", "Surveillance threshold changed"
    SURVEILLANCE_FREEZE = "surveillance_freeze", "Account freeze from a surveillance case"
    SURVEILLANCE_MM_EXEMPTION = "surveillance_mm_exemption", "Market-maker exemption (surveillance)"


class AuditLog(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=40, choices=AuditAction.choices, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_actions")
    target_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events")
    target = models.CharField(max_length=200, blank=True, help_text="What was acted on, e.g. 'api_key:12'.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise RuntimeError("Audit log rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("Audit log rows are append-only.")

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.target}"


def audit_record(
    *,
    action: str,
    actor=None,
    target_user=None,
    target: str = "",
    request: HttpRequest | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one audit row. Call it inside the business action's transaction so the row
    commits (or rolls back) with the change it describes. Never put secrets in ``details``.
    ``action`` is an :class:`AuditAction` (the one catalog; its label is what the admin
    shows): anything else raises ValueError and writes nothing."""
    action = AuditAction(action)
    user_agent = request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else ""
    return AuditLog.objects.create(
        action=action,
        actor=actor if getattr(actor, "pk", None) else None,
        target_user=target_user,
        target=target[:200],
        ip=client_ip(request),
        user_agent=user_agent,
        details=details or {},
    )
