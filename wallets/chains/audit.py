"""Audit action names of the chains app (stored in ``accounts.AuditLog.action``)."""
from __future__ import annotations

from enum import StrEnum


class ChainsAuditAction(StrEnum):
    DEPOSIT_CREDITED = "deposit_credited"
    DEPOSIT_REORGED_AFTER_CREDIT = "deposit_reorged_after_credit"
    WITHDRAWAL_REQUESTED = "withdrawal_requested"
    WITHDRAWAL_APPROVED = "withdrawal_approved"
    WITHDRAWAL_REJECTED = "withdrawal_rejected"
    WITHDRAWAL_SIGNED = "withdrawal_signed"
    WITHDRAWAL_BROADCAST = "withdrawal_broadcast"
    WITHDRAWAL_EXPIRED_RESIGN = "withdrawal_expired_resign"
    WITHDRAWAL_COMPLETED = "withdrawal_completed"
    WITHDRAWAL_FAILED = "withdrawal_failed"
    WITHDRAWAL_ADDRESS_ADDED = "withdrawal_address_added"
    WITHDRAWAL_ADDRESS_CONFIRMED = "withdrawal_address_confirmed"
    WITHDRAWAL_ADDRESS_REMOVED = "withdrawal_address_removed"
    WITHDRAWAL_WHITELIST_ENABLED = "withdrawal_whitelist_enabled"
    WITHDRAWAL_WHITELIST_DISABLE_REQUESTED = "withdrawal_whitelist_disable_requested"
    TOKEN_SUPPLY_REQUESTED = "token_supply_requested"
    TOKEN_SUPPLY_APPROVED = "token_supply_approved"
    TOKEN_SUPPLY_REJECTED = "token_supply_rejected"
