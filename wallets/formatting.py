"""Amounts as people see them: exactly the asset's precision, never scientific notation."""
from __future__ import annotations

from decimal import Decimal, localcontext

from wallets.models import Asset
from wallets.services import LEDGER_DECIMAL_CONTEXT


def amount_str(value: Decimal, asset: Asset) -> str:
    with localcontext(LEDGER_DECIMAL_CONTEXT):
        return f"{Decimal(value).quantize(Decimal(1).scaleb(-asset.precision)):f}"
