"""Market data is computed on read from ``trading.Trade`` (candles, tickers, averages: see
:mod:`marketdata.selectors` and docs/marketdata.md for why) — except the mark price, which is
state: each mark is anchored on the previous one (:mod:`marketdata.mark`)."""
from django.db import models
from django.utils import timezone


class MarkPrice(models.Model):
    """The current mark price of a market (one row per market), written only by
    :func:`marketdata.mark.mark_update` / ``mark_set``."""

    market = models.OneToOneField("trading.Market", on_delete=models.CASCADE, primary_key=True, related_name="mark")
    price = models.DecimalField(max_digits=38, decimal_places=18)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"MarkPrice({self.market_id}, {self.price})"
