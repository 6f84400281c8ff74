"""Exact conversion between a chain's integer base unit (wei, satoshi, sun, lamport) and Decimal.

Called only at the adapter boundary: everything above the adapters speaks Decimal, every node
speaks integers. Nothing is rounded here: an amount with more decimals than the chain carries
is refused."""
from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation, localcontext

from wallets.chains.errors import ChainsError, ChainsErrorCode

_EXACT = Context(prec=100, traps=[InvalidOperation])

# Decimals of each chain's native coin.
NATIVE_DECIMALS = {"ETH": 18, "BTC": 8, "TRX": 6, "SOL": 9}


def to_base_units(amount: Decimal, decimals: int) -> int:
    """``amount`` (Decimal, or int/str) in base units; refuses floats and extra decimals."""
    if isinstance(amount, (float, bool)) or not isinstance(amount, (Decimal, int, str)):
        raise TypeError(f"An amount must be a Decimal, not {type(amount).__name__}.")
    with localcontext(_EXACT):
        value = Decimal(amount)
        if not value.is_finite():
            raise ChainsError(ChainsErrorCode.AMOUNT_NOT_REPRESENTABLE, "The amount must be finite.")
        scaled = value.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise ChainsError(
                ChainsErrorCode.AMOUNT_NOT_REPRESENTABLE,
                f"{value} has more than {decimals} decimal places.",
                decimals=decimals,
            )
        return int(scaled)


def from_base_units(value: int, decimals: int) -> Decimal:
    """Base units as an exact Decimal (``10**18`` wei → ``Decimal('1.000000000000000000')``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Base units must be an int, not {type(value).__name__}.")
    with localcontext(_EXACT):
        return Decimal(value).scaleb(-decimals)
