"""Fee rates: the market's maker/taker fee scaled by the user's 30-day volume tier.

The tier table is ``settings.KK99["FEE_TIERS"]`` (highest ``min_volume`` reached wins). A user's
30-day volume is the quote amount of their trades with ANOTHER user (as maker or taker; a
self-trade never counts — it costs nothing but fees and would buy a cheaper tier) over all markets, every quote asset treated as USD-equivalent (all KK99 markets quote
USDT or USD). The engine caches a user's multipliers for FEE_TIER_CACHE_SECONDS (0 = look up
once per batch)."""
from __future__ import annotations

import time
from datetime import timedelta
from decimal import ROUND_UP, Decimal

from django.db.models import F, Sum
from django.utils import timezone

from kk99.conf import kk99_setting
from trading.models import Trade


def fee_tier_for_volume(volume: Decimal) -> dict:
    tiers = sorted(kk99_setting("FEE_TIERS"), key=lambda t: t["min_volume"])
    chosen = tiers[0]
    for tier in tiers:
        if volume >= tier["min_volume"]:
            chosen = tier
    return chosen


def user_volume_30d(*, user_id: int, now=None) -> Decimal:
    since = (now or timezone.now()) - timedelta(days=30)
    total = (
        Trade.objects.of_user(user_id, since=since, self_trades=False)
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


# --- fees paid in the KK99 token (issue 6) ---------------------------------------------------


def kk99_fee_amount(*, fee_value_usdt: Decimal, kk99_price: Decimal, discount: Decimal, precision: int) -> Decimal:
    """The KK99 charged instead of a fee worth ``fee_value_usdt``: value ÷ KK99 price ×
    (1 − discount), rounded UP to the token's precision. Rounding direction: against the user
    — they pay at most one smallest KK99 unit more than the exact amount, never less."""
    if fee_value_usdt <= 0 or kk99_price <= 0:
        return Decimal(0)
    exact = fee_value_usdt / kk99_price * (Decimal(1) - discount)
    return exact.quantize(Decimal(1).scaleb(-precision), rounding=ROUND_UP)


def kk99_discounted_fee(fee: Decimal, *, discount: Decimal, precision: int) -> Decimal:
    """A fee whose received asset IS KK99: the same asset at the discount, rounded UP."""
    if fee <= 0:
        return Decimal(0)
    return (fee * (Decimal(1) - discount)).quantize(Decimal(1).scaleb(-precision), rounding=ROUND_UP)


def kk99_price_usdt(*, now=None) -> Decimal:
    """The KK99 price in USDT used to convert fees — a reference a trader cannot move cheaply
    (PITFALLS: "prices used for money decisions must not be the last trade of a market the
    user can trade against themselves").

    ``KK99_FEE_PRICE_SOURCE`` "reference": the operator's configured price
    (``REFERENCE_PRICES_USDT["KK99"]``, the oracle). "twap" (default): the time-weighted average
    price of ``KK99_FEE_PRICE_MARKET`` over the last ``KK99_FEE_PRICE_WINDOW_SECONDS``, from
    committed trades between two DIFFERENT users only (self-trades are excluded), falling back to
    the configured price when there is none. Either way the result is clamped to
    [``KK99_FEE_PRICE_FLOOR``, ``KK99_FEE_PRICE_CEILING``] (None = unbounded on that side)."""
    reference = Decimal(kk99_setting("REFERENCE_PRICES_USDT").get(kk99_setting("TOKEN_SYMBOL"), 0))
    price = None
    if kk99_setting("KK99_FEE_PRICE_SOURCE") == "twap":
        price = kk99_twap(
            symbol=kk99_setting("KK99_FEE_PRICE_MARKET"),
            now=now or timezone.now(),
            window=timedelta(seconds=kk99_setting("KK99_FEE_PRICE_WINDOW_SECONDS")),
        )
    if price is None or price <= 0:
        price = reference
    return price_clamp(price, floor=kk99_setting("KK99_FEE_PRICE_FLOOR"), ceiling=kk99_setting("KK99_FEE_PRICE_CEILING"))


def price_clamp(price: Decimal, *, floor: Decimal | str | None, ceiling: Decimal | str | None) -> Decimal:
    if floor is not None and price < Decimal(floor):
        price = Decimal(floor)
    if ceiling is not None and price > Decimal(ceiling):
        price = Decimal(ceiling)
    return price


def kk99_twap(*, symbol: str, now, window: timedelta) -> Decimal | None:
    """Time-weighted average trade price of ``symbol`` over ``[now - window, now]``, self-trades
    excluded: each price counts for as long as it was the last (non-self) trade price; the
    price in force when the window opens counts from the window's start. None without trades."""
    start = now - window
    trades = Trade.objects.filter(market__symbol=symbol).exclude(maker_user_id=F("taker_user_id"))
    points = list(trades.filter(created_at__gte=start, created_at__lte=now).order_by("created_at", "trade_id").values_list("created_at", "price"))
    before = trades.filter(created_at__lt=start).order_by("-created_at", "-trade_id").values_list("price", flat=True).first()
    if before is not None:
        points.insert(0, (start, before))
    if not points:
        return None
    weighted = Decimal(0)
    total = Decimal(0)
    for (at, price), (until, _) in zip(points, points[1:] + [(now, None)]):
        seconds = Decimal((until - at).total_seconds())
        weighted += price * seconds
        total += seconds
    if total <= 0:  # every point at the same instant: their plain mean
        return sum((p for _, p in points), Decimal(0)) / len(points)
    return weighted / total


def usdt_value_of(asset_symbol: str) -> Decimal | None:
    """USDT per unit of a quote asset: 1 for USDT, else the operator's reference price (None
    when unknown — then the fee stays in the received asset)."""
    if asset_symbol == "USDT":
        return Decimal(1)
    value = kk99_setting("REFERENCE_PRICES_USDT").get(asset_symbol)
    return None if value is None else Decimal(value)
