"""The market inputs of the SPAN computation that are not the account's own: the daily EWMA
volatility per asset and the active parameter file. One home for both, so the margin state,
the what-if and the admin agree; it imports nothing of ``margin.selectors`` (which uses it).

Volatility: Risk I's :func:`risk.metrics.ewma_volatility` (λ = ``KK99["MARGIN_SPAN"]["VOL_LAMBDA"]``)
of the simple daily returns of the asset's ``<ASSET>USDT`` closes (:func:`risk.portfolio.closes_usdt`,
the same series Risk I's VaR uses), **closed days only** (up to yesterday, UTC: no look-ahead, and
the value cannot move during the day), the last ``VOL_DAYS`` of them. Cached per (asset, day,
λ, window) in the process. A float statistic converted once to Decimal (its shortest repr): it
only sets a scan range, which :mod:`margin.span` then rounds up; no money moves with the float."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

from kk99.conf import kk99_setting
from margin import span
from risk.metrics import ewma_volatility
from risk.portfolio import closes_usdt

_vol_lock = threading.Lock()
_vol_cache: dict[tuple[str, dt.date, int, str], Decimal | None] = {}


def vol_from_closes(closes: list[Decimal], lam: Decimal) -> Decimal | None:
    """Daily EWMA volatility of the simple returns of ``closes`` (oldest first), ``None`` with
    fewer than two closes."""
    if len(closes) < 2:
        return None
    returns = [float(b) / float(a) - 1.0 for a, b in zip(closes, closes[1:], strict=False) if a]
    if not returns:
        return None
    return Decimal(repr(ewma_volatility(returns, float(lam))))


def asset_vols(symbols: list[str], *, as_of: dt.date | None = None) -> dict[str, Decimal]:
    """Daily EWMA volatility of each symbol that has a ``<SYMBOL>USDT`` market with history,
    from closed days up to ``as_of`` (default: yesterday, UTC) — cached per (symbol, day, λ,
    window) in this process, so an order check reads the candles at most once a day per asset.
    Symbols without a volatility are left out (the parameter file's ``missing_vol_range`` applies)."""
    conf = kk99_setting("MARGIN_SPAN")
    lam, days = Decimal(conf["VOL_LAMBDA"]), int(conf["VOL_DAYS"])
    as_of = as_of or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1))
    key_tail = (as_of, days, str(lam))
    missing = [s for s in symbols if (s, *key_tail) not in _vol_cache]
    if missing:
        closes = closes_usdt(symbols=missing, as_of=as_of, days=days)
        with _vol_lock:
            for key in [k for k in _vol_cache if k[1] != as_of]:  # yesterday's values are done with
                del _vol_cache[key]
            for symbol in missing:
                _vol_cache[(symbol, *key_tail)] = vol_from_closes(closes.get(symbol, []), lam)
    out = {}
    for symbol in symbols:
        vol = _vol_cache.get((symbol, *key_tail))
        if vol is not None:
            out[symbol] = vol
    return out


def vol_cache_clear() -> None:
    with _vol_lock:
        _vol_cache.clear()


def active_params() -> span.SpanParams:
    """The parameter file named by ``KK99["MARGIN_SPAN"]["PARAMS_VERSION"]`` (parsed once)."""
    return span.load_params(kk99_setting("MARGIN_SPAN")["PARAMS_VERSION"])
