"""Volatility halts (circuit breakers): the price band in force, the band check of a taker
against the book, and the call auction that reopens a halted market.

Pure functions over integers (ticks, lots, quote units) and Decimals — no C calls except
reading the book's depth — so the property tests can compare them with brute-force oracles;
only :func:`band_params` and :func:`band_load` read the database (the one home of "which
trades make the band", shared by the engine and ``trading.selectors.market_status``). The engine (:mod:`trading.engine.matching`, :mod:`trading.engine.core`)
decides *when* to call them; docs/halts.md states the rules.

The band in force (both parts, intersected):

* static, LULD-style: the arithmetic mean of the trade prices of the last
  ``reference_minutes`` ± ``static_pct`` %;
* dynamic, CME-style: [low × (1 − ``dynamic_pct`` %), high × (1 + ``dynamic_pct`` %)] over
  the trades of the last ``dynamic_minutes``.

Only trades since the last reopening count (the auction price is the new reference). A
window with no trade uses the last trade price instead; before the first trade ever there
is no band.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from trading.models import EngineState, Trade, VolatilityBand
from trading.native import CommandType, Side, StpMode

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class BandParams:
    reference_minutes: int
    static_pct: Decimal
    dynamic_minutes: int
    dynamic_pct: Decimal
    pause_seconds: int


class BandTracker:
    """Trade prices in the two windows, with O(1) amortised mean / high / low.

    ``add`` must be called in time order (the engine's trade order). Prices are Decimals."""

    def __init__(self, params: BandParams, last_price: Decimal | None = None) -> None:
        self.params = params
        self.last_price = last_price
        self._ref: deque[tuple[datetime, Decimal]] = deque()
        self._sum = Decimal(0)
        self._dyn: deque[tuple[datetime, Decimal]] = deque()
        self._max: deque[tuple[datetime, Decimal]] = deque()  # decreasing prices
        self._min: deque[tuple[datetime, Decimal]] = deque()  # increasing prices

    def add(self, at: datetime, price: Decimal) -> None:
        self.last_price = price
        self._ref.append((at, price))
        self._sum += price
        self._dyn.append((at, price))
        while self._max and self._max[-1][1] <= price:
            self._max.pop()
        self._max.append((at, price))
        while self._min and self._min[-1][1] >= price:
            self._min.pop()
        self._min.append((at, price))

    def _evict(self, now: datetime) -> None:
        ref_from = now - timedelta(minutes=self.params.reference_minutes)
        while self._ref and self._ref[0][0] < ref_from:
            self._sum -= self._ref.popleft()[1]
        dyn_from = now - timedelta(minutes=self.params.dynamic_minutes)
        while self._dyn and self._dyn[0][0] < dyn_from:
            self._dyn.popleft()
        while self._max and self._max[0][0] < dyn_from:
            self._max.popleft()
        while self._min and self._min[0][0] < dyn_from:
            self._min.popleft()

    def reference(self, now: datetime) -> Decimal | None:
        self._evict(now)
        if self._ref:
            return self._sum / len(self._ref)
        return self.last_price

    def band(self, now: datetime) -> tuple[Decimal, Decimal] | None:
        """(low, high) prices in force at ``now``; None before the first trade."""
        ref = self.reference(now)
        if ref is None:
            return None
        p = self.params
        high = self._max[0][1] if self._max else self.last_price
        low = self._min[0][1] if self._min else self.last_price
        s, x = p.static_pct / HUNDRED, p.dynamic_pct / HUNDRED
        return max(ref * (1 - s), low * (1 - x)), min(ref * (1 + s), high * (1 + x))


def band_params(market_id: int) -> BandParams | None:
    """The market's enabled band parameters (admin: VolatilityBand), or None = no halts."""
    return band_params_of(VolatilityBand.objects.filter(market_id=market_id, enabled=True).first())


def band_params_of(vb: VolatilityBand | None) -> BandParams | None:
    """:func:`band_params` from a VolatilityBand row already read (None: no row)."""
    if vb is None or not vb.enabled:
        return None
    return BandParams(vb.reference_minutes, vb.static_pct, vb.dynamic_minutes, vb.dynamic_pct, vb.pause_seconds)


def band_load(market_id: int, state: EngineState, now: datetime, params: BandParams | None) -> BandTracker | None:
    """The band tracker from the committed trades of the windows since the last reopening:
    the same band after a restart or replay as before it."""
    if params is None:
        return None
    since = now - timedelta(minutes=max(params.reference_minutes, params.dynamic_minutes))
    if state.band_since is not None:
        since = max(since, state.band_since)
    tracker = BandTracker(params, last_price=state.last_price)
    for at, price in Trade.objects.filter(market_id=market_id, created_at__gte=since).order_by("trade_id").values_list("created_at", "price"):
        tracker.add(at, price)
    tracker.last_price = state.last_price
    return tracker


def volatility_phase(market_id: int, now: datetime) -> str | None:
    """``HALT`` while a volatility pause runs, ``AUCTION_MATCH`` once it is over and the
    reopening auction is due (the engine's next batch), None when not halted."""
    until = EngineState.objects.filter(market_id=market_id).values_list("halted_until", flat=True).first()
    if until is None:
        return None
    return "HALT" if now < until else "AUCTION_MATCH"


def band_ticks(band: tuple[Decimal, Decimal], tick: Decimal) -> tuple[int, int]:
    """The band as inclusive tick bounds (a price on the boundary is inside)."""
    lo, hi = band
    return int((lo / tick).to_integral_value(rounding=ROUND_CEILING)), int((hi / tick).to_integral_value(rounding=ROUND_FLOOR))


def _opposite_levels(book, side: int):
    """The levels a taker of ``side`` would meet, best first, fetched in growing pages."""
    k = 16
    seen = 0
    while True:
        bids, asks = book.depth(k)
        levels = asks if side == Side.BUY else bids
        for lv in levels[seen:]:
            yield lv[0], lv[1]
        if len(levels) < k:
            return
        seen = len(levels)
        k *= 4


def first_print_outside(book, cmd: tuple, lo: int, hi: int) -> int | None:
    """The first price (ticks) at which new-order command ``cmd`` would trade outside the
    band [lo, hi], or None if every print it can make is inside.

    Walks the opposite side of the book as the C book would match: level by level, bounded by
    the limit price and by the quantity (or quote budget). With STP EXPIRE_MAKER the taker can
    skip its own orders and reach further than the quantity says, so for it the quantity is
    not counted (conservative: every level up to the limit price is checked)."""
    kind, side, _tif, post_only, stp, _oid, _owner, price, qty = cmd
    if post_only:
        return None
    buy = side == Side.BUY
    count_qty = stp != StpMode.EXPIRE_MAKER
    left = qty
    for p, q in _opposite_levels(book, side):
        if kind == CommandType.LIMIT and (p > price if buy else p < price):
            return None
        if kind == CommandType.MARKET_QUOTE and left < p:
            return None  # the budget cannot buy one lot at this level: matching ends here
        if p < lo or p > hi:
            return p
        if count_qty:
            left -= p * q if kind == CommandType.MARKET_QUOTE else q
            if left <= 0:
                return None
    return None


# --- the call auction ---------------------------------------------------------------------


def auction_volumes(buys, sells, p: int) -> tuple[int, int]:
    """(buy volume willing at p, sell volume willing at p); buys/sells are (price, qty)."""
    return sum(q for bp, q in buys if bp >= p), sum(q for sp, q in sells if sp <= p)


def auction_price(buys, sells, reference: int | None) -> tuple[int, int] | None:
    """The uncrossing price and its executable volume, or None if the book does not cross.

    Rule: maximum executable volume; then minimum imbalance |buy − sell volume|; then the
    price closest to ``reference`` (ticks); then the lower price. Candidates are every limit
    price plus, in each gap between two consecutive limit prices, the point of the gap
    closest to the reference (its lowest point without one): volume and imbalance are
    constant inside a gap, so the result equals a scan over every tick."""
    prices = sorted({p for p, _ in buys} | {p for p, _ in sells})
    if not prices:
        return None
    cands = set(prices)
    for a, b in zip(prices, prices[1:]):
        if b - a > 1:  # inside a gap only the tie-breaks differ: its best point is a candidate
            cands.add(a + 1 if reference is None else min(max(reference, a + 1), b - 1))
    best = None
    for p in cands:
        bv, sv = auction_volumes(buys, sells, p)
        vol = min(bv, sv)
        if vol <= 0:
            continue
        key = (-vol, abs(bv - sv), abs(p - reference) if reference is not None else 0, p)
        if best is None or key < best[0]:
            best = (key, p, vol)
    return None if best is None else (best[1], best[2])


def auction_fills(buys, sells, price: int, volume: int) -> list[tuple[object, object, int]]:
    """Pair the orders that execute at ``price``: buys (key, limit, qty) in priority order
    (higher price, then earlier), sells likewise (lower price, then earlier), ``volume`` lots
    in all. Returns (buy key, sell key, qty) in execution order."""
    out = []
    bi = [[k, p, q] for k, p, q in buys if p >= price]
    si = [[k, p, q] for k, p, q in sells if p <= price]
    i = j = 0
    left = volume
    while left > 0 and i < len(bi) and j < len(si):
        q = min(bi[i][2], si[j][2], left)
        out.append((bi[i][0], si[j][0], q))
        bi[i][2] -= q
        si[j][2] -= q
        left -= q
        if bi[i][2] == 0:
            i += 1
        if si[j][2] == 0:
            j += 1
    return out
