"""The chains app's error codes and exceptions (all :class:`kk99.errors.KK99Error`)."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from kk99.errors import KK99Error


class ChainsErrorCode(StrEnum):
    INVALID_ADDRESS = "invalid_address"
    """The address is not valid for the chain (format, checksum or network)."""
    UNKNOWN_CHAIN = "unknown_chain"
    """No such chain, or it is not enabled."""
    ASSET_NOT_ON_CHAIN = "asset_not_on_chain"
    """The asset cannot be deposited or withdrawn on this chain."""
    AMOUNT_BELOW_MINIMUM = "amount_below_minimum"
    """The withdrawal is smaller than the asset's minimum on this chain."""
    AMOUNT_NOT_REPRESENTABLE = "amount_not_representable"
    """The amount has more decimals than the chain (or the ledger) can carry."""
    WITHDRAWAL_LIMIT_EXCEEDED = "withdrawal_limit_exceeded"
    """The KYC tier's daily withdrawal limit would be exceeded."""
    WITHDRAWALS_DISABLED = "withdrawals_disabled"
    """The account may not withdraw (frozen, unverified, tier without withdrawals) or the asset is disabled."""
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    """2FA is enabled and the code was missing or wrong."""
    INVALID_STATE = "invalid_state"
    """The withdrawal (or request) is not in a state that allows this action."""
    APPROVAL_NOT_ALLOWED = "approval_not_allowed"
    """Not staff with the permission, approving one's own request, or approving twice."""
    SECRET_UNAVAILABLE = "secret_unavailable"
    """Vault did not answer, or the secret is missing (and no local fallback is allowed)."""
    CHAIN_UNAVAILABLE = "chain_unavailable"
    """The node did not answer or answered with an error."""
    TRANSACTION_EXPIRED = "transaction_expired"
    """A signed transaction can no longer be included (TRON expiration, Solana blockhash)."""
    DESTINATION_NOT_ALLOWED = "destination_not_allowed"
    """The destination is a zero/burn address or one of the exchange's own addresses."""
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    """The idempotency key already names a different withdrawal request."""
    IDEMPOTENCY_KEY_INVALID = "idempotency_key_invalid"
    """The idempotency key is missing (where required), empty or too long."""
    ADDRESS_NOT_WHITELISTED = "address_not_whitelisted"
    """Whitelist-only mode: the destination is not a confirmed address-book entry past its cooling-off period."""
    ADDRESS_BOOK_DUPLICATE = "address_book_duplicate"
    """The address book already has this address for this network and asset."""
    ADDRESS_BOOK_LINK_INVALID = "address_book_link_invalid"
    """The address confirmation link is invalid, expired, or for another account or entry."""


class ChainsError(KK99Error):
    status = 400

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(code, message, **details)


class InvalidAddress(ChainsError):
    def __init__(self, message: str = "The address is not valid for this chain.", **details: Any) -> None:
        super().__init__(ChainsErrorCode.INVALID_ADDRESS, message, **details)


class SecretUnavailable(ChainsError):
    status = 503

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(ChainsErrorCode.SECRET_UNAVAILABLE, message, **details)


class ChainUnavailable(ChainsError):
    status = 503

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(ChainsErrorCode.CHAIN_UNAVAILABLE, message, **details)


class TransactionExpired(ChainsError):
    status = 409

    def __init__(self, message: str = "The signed transaction has expired.", **details: Any) -> None:
        super().__init__(ChainsErrorCode.TRANSACTION_EXPIRED, message, **details)
