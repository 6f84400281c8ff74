"""Accounts selectors: read-only questions other apps ask about a user."""
from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from accounts.audit import AuditLog
from accounts.errors import AccountFrozen, TradingNotAllowed
from accounts.models import ApiKey, KycSubmission, User
from kk99.conf import kk99_setting
from kk99.errors import NotFound


def kyc_limits(*, user: User) -> dict[str, Any]:
    """The limits of the user's KYC tier, from ``KK99["KYC_TIERS"]``, plus ``tier``.

    Keys: ``tier``, ``label``, ``daily_withdrawal_usdt`` (Decimal), ``max_order_notional_usdt``
    (Decimal), ``can_trade`` (bool, the tier's rule — see :func:`user_can_trade` for the
    account-state-aware answer)."""
    tiers = kk99_setting("KYC_TIERS")
    return {"tier": user.kyc_tier, **tiers[user.kyc_tier]}


def user_trading_refusal(*, user: User) -> AccountFrozen | TradingNotAllowed | None:
    """The one "may trade" rule: why ``user`` may not trade, or None if they may. A frozen
    (or deactivated) account is ``account_frozen``; a KYC tier without trading is
    ``trading_not_allowed``. Used by order placement (``trading.orders.check_may_trade``),
    the API permission (``accounts.permissions``) and :func:`user_can_trade`."""
    if user.is_frozen or not user.is_active:
        return AccountFrozen()
    if not kyc_limits(user=user)["can_trade"]:
        return TradingNotAllowed()
    return None


def user_can_trade(*, user: User) -> bool:
    """Active, not frozen, and the tier allows trading."""
    return user_trading_refusal(user=user) is None


def user_can_withdraw(*, user: User) -> bool:
    """Active, not frozen, email verified and a tier with a positive withdrawal limit.
    (The 2FA check and the daily amount are the withdrawal flow's own steps.)"""
    return bool(
        user.is_active
        and not user.is_frozen
        and user.email_verified_at is not None
        and kyc_limits(user=user)["daily_withdrawal_usdt"] > 0
    )


def totp_enabled(*, user: User) -> bool:
    return user.totp_enabled


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by("-id")


def api_key_get(*, user: User, api_key_id: int) -> ApiKey:
    """One of *the user's own* keys; 404 for anyone else's (no existence oracle)."""
    try:
        return ApiKey.objects.get(user=user, pk=api_key_id)
    except ApiKey.DoesNotExist as exc:
        raise NotFound("No such API key.") from exc


def api_key_get_active(*, key: str) -> ApiKey | None:
    return ApiKey.objects.select_related("user").filter(key=key, revoked_at__isnull=True).first()


def kyc_submission_latest(*, user: User) -> KycSubmission | None:
    return KycSubmission.objects.filter(user=user).order_by("-submitted_at", "-id").prefetch_related("documents").first()


def kyc_submission_pending_exists(*, user: User) -> bool:
    return KycSubmission.objects.filter(user=user, status=KycSubmission.Status.PENDING).exists()


def audit_events_for_user(*, user: User, limit: int = 20) -> QuerySet[AuditLog]:
    return AuditLog.objects.filter(Q(target_user=user) | Q(actor=user)).order_by("-id")[:limit]
