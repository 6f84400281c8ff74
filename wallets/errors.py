"""The ledger's error codes and exceptions (all :class:`kk99.errors.KK99Error`)."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from kk99.errors import KK99Error


class WalletsErrorCode(StrEnum):
    INVALID_AMOUNT = "invalid_amount"
    """Not a finite Decimal, zero/negative where a positive amount is needed, or too large."""
    PRECISION_EXCEEDED = "precision_exceeded"
    """More decimal places than the asset's precision."""
    INSUFFICIENT_FUNDS = "insufficient_funds"
    """A bucket of an account that may not go negative would go below zero."""
    DUPLICATE_EVENT = "duplicate_ledger_event"
    """An event with this idempotency key has already been applied."""
    UNBALANCED_EVENT = "unbalanced_ledger_event"
    """The legs of a posting do not sum to zero per asset (a caller's bug)."""
    INVALID_POSTING = "invalid_posting"
    """A posting that makes no sense (no legs, same account on both sides, bad bucket …)."""
    ADJUSTMENT_NOT_ALLOWED = "adjustment_not_allowed"
    """Not allowed to request/approve this adjustment: missing permission, the requester's or
    approver's own account, the requester approving, the KK99 token, or an asset without caps."""
    ADJUSTMENT_CAP_EXCEEDED = "adjustment_cap_exceeded"
    """Over the asset's per-adjustment cap or its rolling-24-hour cap (``ADJUSTMENT_CAPS``)."""
    ADJUSTMENT_INVALID_STATE = "adjustment_invalid_state"
    """The adjustment request does not exist or was already approved or rejected."""


class LedgerError(KK99Error):
    status = 400


class InvalidAmount(LedgerError):
    def __init__(self, message: str, code: str = WalletsErrorCode.INVALID_AMOUNT, **details: Any) -> None:
        super().__init__(code, message, **details)


class InsufficientFunds(LedgerError):
    status = 409

    def __init__(self, message: str = "Insufficient funds.", **details: Any) -> None:
        super().__init__(WalletsErrorCode.INSUFFICIENT_FUNDS, message, **details)


class DuplicateLedgerEvent(LedgerError):
    """Raised when the idempotency key was already used. Nothing was written; an outer
    transaction stays usable. Callers that want "at most once" catch it."""

    status = 409

    def __init__(self, idempotency_key: str) -> None:
        super().__init__(
            WalletsErrorCode.DUPLICATE_EVENT,
            "This ledger event has already been applied.",
            idempotency_key=idempotency_key,
        )
        self.idempotency_key = idempotency_key


class UnbalancedPosting(LedgerError):
    def __init__(self, message: str = "The posting does not balance.", **details: Any) -> None:
        super().__init__(WalletsErrorCode.UNBALANCED_EVENT, message, **details)


class InvalidPosting(LedgerError):
    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(WalletsErrorCode.INVALID_POSTING, message, **details)


class AdjustmentNotAllowed(LedgerError):
    status = 403

    def __init__(self, message: str = "Only authorised staff may adjust balances.") -> None:
        super().__init__(WalletsErrorCode.ADJUSTMENT_NOT_ALLOWED, message)


class AdjustmentCapExceeded(LedgerError):
    status = 409

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(WalletsErrorCode.ADJUSTMENT_CAP_EXCEEDED, message, **details)


class AdjustmentStateInvalid(LedgerError):
    status = 409

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(WalletsErrorCode.ADJUSTMENT_INVALID_STATE, message, **details)
