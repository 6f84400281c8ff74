"""Portfolio VaR/ES from the exchange's own daily closes (reads only).

Method — historical simulation on today's holdings:

* holdings: an account's balances (available + locked) per asset; exchange-wide, the sum over
  every user account (the custodial exposure — system accounts are not customers' money);
* prices: each asset's gap-free daily closes on its ``<ASSET>USDT`` market
  (:func:`marketdata.selectors.candles_for_market`, interval ``1d``), only **closed** days up to
  ``as_of`` (no look-ahead); USDT is 1; an asset with no USDT market is valued at the operator's
  reference price (``trading.fees.usdt_value_of``) and contributes no risk;
* scenarios: for each of the last N days, ``P&Lₜ = Σₐ valueₐ · (closeₐ,ₜ / closeₐ,ₜ₋₁ − 1)``
  over the days every asset has a close (the common tail);
* 1-day VaR/ES: :func:`risk.metrics.historical_var` / ``historical_es`` of those scenarios
  (k-th worst convention); h-day: × √h (square-root-of-time, stated, not hidden).

Money leaves this module as ``Decimal`` USDT quantized to 1e-8."""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from marketdata.intervals import INTERVALS
from marketdata.selectors import candles_for_market
from risk import metrics
from trading.fees import usdt_value_of
from trading.models import Market
from wallets.models import AccountPurpose, Balance

DAY = INTERVALS["1d"]
QUANTUM = Decimal("0.00000001")


def to_usdt(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(QUANTUM)


def holdings_for_user(*, user: Any) -> dict[str, Decimal]:
    rows = Balance.objects.filter(account__user_id=user.pk, account__purpose=AccountPurpose.SPOT).values_list("asset__symbol", "available", "locked")
    return {s: a + lk for s, a, lk in rows if a + lk}


def holdings_by_user() -> dict[int, dict[str, Decimal]]:
    """Every user account's non-zero holdings, one query (the nightly job)."""
    out: dict[int, dict[str, Decimal]] = defaultdict(dict)
    rows = Balance.objects.filter(account__user__isnull=False, account__purpose=AccountPurpose.SPOT).values_list("account__user_id", "asset__symbol", "available", "locked")
    for user_id, symbol, available, locked in rows:
        if available + locked:
            out[user_id][symbol] = available + locked
    return dict(out)


def holdings_exchange() -> dict[str, Decimal]:
    rows = Balance.objects.filter(account__user__isnull=False).values("asset__symbol").annotate(a=Sum("available"), lk=Sum("locked"))
    return {r["asset__symbol"]: r["a"] + r["lk"] for r in rows if r["a"] + r["lk"]}


def _day_start(as_of: dt.date) -> dt.datetime:
    return dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=dt.UTC)


def closes_usdt(*, symbols: list[str], as_of: dt.date, days: int) -> dict[str, list[Decimal]]:
    """Up to ``days + 1`` daily closes (oldest first, the last one ``as_of``'s) of each symbol
    that has a ``<SYMBOL>USDT`` market with trades; USDT and unpriced symbols are left out."""
    markets = {m.base.symbol: m for m in Market.objects.select_related("base", "quote").filter(base__symbol__in=symbols, quote__symbol="USDT")}
    end = _day_start(as_of)
    out = {}
    for symbol, market in markets.items():
        candles = candles_for_market(market=market, interval=DAY, end=end, limit=days + 1, now=end + dt.timedelta(days=1))
        if candles:
            out[symbol] = [c.close for c in candles]
    return out


@dataclasses.dataclass(frozen=True)
class Scenarios:
    exposure: float  # USDT value of the holdings at the last close
    pnl: list[float]  # one P&L per historical day, oldest first
    values: dict[str, float]


def scenarios(*, holdings: dict[str, Decimal], as_of: dt.date, days: int) -> Scenarios:
    risky = [s for s in holdings if s != "USDT"]
    closes = closes_usdt(symbols=risky, as_of=as_of, days=days)
    values: dict[str, float] = {}
    exposure = 0.0
    for symbol, qty in holdings.items():
        if symbol in closes:
            value = float(qty * closes[symbol][-1])
            values[symbol] = value
        else:
            value = float(qty * (usdt_value_of(symbol) or 0))
        exposure += value
    length = min((len(c) for s, c in closes.items() if s in values), default=0)
    pnl: list[float] = []
    for t in range(1, length):
        total = 0.0
        for symbol, value in values.items():
            series = closes[symbol][-length:]
            total += value * (float(series[t]) / float(series[t - 1]) - 1.0)
        pnl.append(total)
    return Scenarios(exposure=exposure, pnl=pnl, values=values)


@dataclasses.dataclass(frozen=True)
class RiskNumbers:
    exposure_usdt: Decimal
    var_usdt: Decimal
    es_usdt: Decimal
    observations: int


def var_es(*, s: Scenarios, confidence: Any, horizon_days: int = 1) -> RiskNumbers:
    """VaR/ES of ``s`` at ``confidence``, scaled to ``horizon_days`` by √h. Zero risk (and
    zero observations) when the holdings have no priced risky asset."""
    if not s.pnl:
        return RiskNumbers(to_usdt(s.exposure), Decimal(0), Decimal(0), 0)
    scale = math.sqrt(horizon_days)
    var = max(0.0, metrics.historical_var(s.pnl, confidence)) * scale
    es = max(0.0, metrics.historical_es(s.pnl, confidence)) * scale
    return RiskNumbers(to_usdt(s.exposure), to_usdt(var), to_usdt(es), len(s.pnl))
