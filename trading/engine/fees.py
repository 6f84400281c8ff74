"""Fee rates: the market's maker/taker fee scaled by the user's 30-day volume tier.

The tier table is ``settings.KK99["FEE_TIERS"]`` (highest ``min_volume`` reached wins). A user's
30-day volume is the quote amount of their trades (as maker or taker, a self-trade counted
once) over all markets, every quote asset treated as USD-equivalent (all KK99 markets quote
USDT or USD). The engine caches a user's multipliers for FEE_TIER_CACHE_SECONDS (0 = look up
once per batch)."""
from __future__ import annotations

import time
from datetime import timedelta
from decimal import ROUND_UP, Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from kk99.conf import kk99_setting


def fee_tier_for_volume(volume: Decimal) -> dict:
    tiers = sorted(kk99_setting("FEE_TIERS"), key=lambda t: t["min_volume"])
    chosen = tiers[0]
    for tier in tiers:
        if volume >= tier["min_volume"]:
            chosen = tier
    return chosen


def user_volume_30d(*, user_id: int, now=None) -> Decimal:
    from trading.models import Trade

    since = (now or timezone.now()) - timedelta(days=30)
    total = (
        Trade.objects.filter(Q(maker_user_id=user_id) | Q(taker_user_id=user_id), created_at__gte=since)
        .aggregate(v=Sum("quote_qty"))["v"]
    )
    return total or Decimal(0)


def fee_amount(amount: Decimal, rate: Decimal, precision: int) -> Decimal:
    """Fee on ``amount`` at ``rate``, rounded UP to the asset's precision (never undercharged,
    never more than the amount for rates ≤ 1)."""
    if rate <= 0 or amount <= 0:
        return Decimal(0)
    return min(amount, (amount * rate).quantize(Decimal(1).scaleb(-precision), rounding=ROUND_UP))


class FeeTierCache:
    """user_id → (maker_multiplier, taker_multiplier), refreshed after the TTL. ``new_batch``
    starts a batch (with a TTL of 0, every batch looks users up afresh)."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[float, Decimal, Decimal]] = {}
        self._batch = 0

    def new_batch(self) -> None:
        self._batch += 1

    def multipliers(self, user_id: int) -> tuple[Decimal, Decimal]:
        ttl = kk99_setting("FEE_TIER_CACHE_SECONDS")
        stamp = time.monotonic() if ttl > 0 else float(self._batch)
        hit = self._cache.get(user_id)
        if hit is not None and ((ttl > 0 and stamp - hit[0] < ttl) or (ttl <= 0 and hit[0] == stamp)):
            return hit[1], hit[2]
        tier = fee_tier_for_volume(user_volume_30d(user_id=user_id))
        value = (Decimal(tier["maker_multiplier"]), Decimal(tier["taker_multiplier"]))
        self._cache[user_id] = (stamp, *value)
        return value
