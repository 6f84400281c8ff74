"""Wallets: assets and (soon) the double-entry ledger."""
from __future__ import annotations

from django.db import models


class Asset(models.Model):
    """A currency or security the exchange holds. ``precision`` is the number of decimal
    places the ledger keeps for it; every amount is quantized to it."""

    symbol = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=64)
    precision = models.PositiveSmallIntegerField(default=8)
    is_active = models.BooleanField(default=True)
    deposit_enabled = models.BooleanField(default=True)
    withdraw_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [models.CheckConstraint(condition=models.Q(precision__lte=18), name="asset_precision_at_most_18")]

    def __str__(self) -> str:
        return self.symbol
