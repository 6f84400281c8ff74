"""Margin error codes (all :class:`kk99.errors.KK99Error`; Binance renderings in
``trading.binance.errors.CATALOG``)."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from kk99.errors import KK99Error


class MarginErrorCode(StrEnum):
    ACCOUNT_MISSING = "margin_account_missing"
    """The user has no margin account of that kind (transfer into it first)."""
    ASSET_NOT_BORROWABLE = "margin_asset_not_borrowable"
    """The asset has no margin terms, is not borrowable, or has no USDT price."""
    PAIR_INVALID = "margin_pair_invalid"
    """No such market for isolated margin."""
    BORROW_EXCEEDS_MAX = "margin_borrow_exceeds_max"
    """More than the account may borrow (collateral after haircuts, tier cap, or its state)."""
    POOL_INSUFFICIENT = "margin_pool_insufficient"
    """The lending pool does not hold that much of the asset."""
    REPAY_EXCEEDS_DEBT = "margin_repay_exceeds_debt"
    """More than is owed (principal + interest) in that asset."""
    TRANSFER_EXCEEDS_MAX = "margin_transfer_exceeds_max"
    """A transfer out of a margin account beyond what its margin state allows."""
    ORDER_BREACHES_MARGIN = "margin_order_breach"
    """A margin order that would leave the account below its requirement (or in liquidation)."""
    ACCOUNT_LIQUIDATING = "margin_account_liquidating"
    """The account is in liquidation: no new orders, borrowing or transfers out."""
    POOL_FUNDING_NOT_ALLOWED = "margin_pool_funding_not_allowed"
    """Lending pool funding: missing permission, same person approving, or not pending."""


class MarginError(KK99Error):
    status = 400

    def __init__(self, code: MarginErrorCode, message: str, *, status: int | None = None, **details: Any) -> None:
        super().__init__(code, message, status=status, **details)
