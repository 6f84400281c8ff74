"""Volatility halts (circuit breakers): the price band in force and the call auction that
reopens a halted market. The band *check* is in the C book (``ob_band_set``: a new order
that would print outside the band is refused whole); this module gives it the band's state
(:meth:`BandTracker.state`).

Pure functions over integers (ticks, lots, quote units) and Decimals — no C calls — so the
property tests can compare them with brute-force oracles; only :func:`band_params` and
:func:`band_load` read the database (the one home of "which trades make the band", shared by
the engine and ``trading.selectors.market_status``). The engine
(:mod:`trading.engine.matching`, :mod:`trading.engine.core`) decides *when* to call them;
docs/halts.md states the rules.

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
from trading.native import BandMode, BandState
from trading.native.types import band_range

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

    def state(self, now: datetime, tick: Decimal, mode: int = BandMode.HALT) -> BandState | None:
        """The windows at ``now`` in ticks, for the C book (``OrderBook.set_band``), which
        moves them with every print it makes; None before the first trade (no band)."""
        if self.last_price is None:
            return None
        self._evict(now)
        p = self.params
        sn, sd = p.static_pct.as_integer_ratio()
        dn, dd = p.dynamic_pct.as_integer_ratio()
        hi = self._max[0][1] / tick if self._max else 0
        lo = self._min[0][1] / tick if self._min else 0
        return BandState(
            int(self.last_price / tick), int(self._sum / tick), len(self._ref), int(hi), int(lo), len(self._dyn), sn, sd, dn, dd, mode,
        )

    def limits(self, now: datetime, tick: Decimal) -> tuple[Decimal, Decimal] | None:
        """The band in force at ``now`` as the C book enforces it: whole ticks, bounds
        inclusive (:func:`trading.native.types.band_range` — exact, rounded inwards); None
        before the first trade."""
        r = band_range(self.state(now, tick))
        return None if r is None else (r[0] * tick, r[1] * tick)

    def band(self, now: datetime) -> tuple[Decimal, Decimal] | None:
        """(low, high) prices in force at ``now``, before rounding to ticks (Decimal
        arithmetic; :meth:`limits` is what is enforced); None before the first trade."""
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


# --- the call auction ---------------------------------------------------------------------


def auction_volumes(buys, sells, p: int) -> tuple[int, int]:
    """(buy volume willing at p, sell volume willing at p); buys/sells are (price, qty[, owner])."""
    return sum(o[1] for o in buys if o[0] >= p), sum(o[1] for o in sells if o[0] <= p)


def executable_volume(buys, sells, p: int) -> tuple[int, int, int]:
    """(buy volume, sell volume, executable volume) at price p. Orders are (price, qty) or
    (price, qty, owner); two orders of the same owner (STP: one account or trade group) never
    match each other, so the executable volume is the maximum flow of the transport problem
    "buyers → sellers of another owner": min(B, S, min over owners g of B + S − b_g − s_g)
    (cut all buyers, all sellers, or everything but one owner's two sides)."""
    bv = sv = 0
    per: dict[object, list[int]] = {}
    for o in buys:
        if o[0] >= p:
            bv += o[1]
            if len(o) > 2:
                per.setdefault(o[2], [0, 0])[0] += o[1]
    for o in sells:
        if o[0] <= p:
            sv += o[1]
            if len(o) > 2:
                per.setdefault(o[2], [0, 0])[1] += o[1]
    vol = min(bv, sv)
    for bg, sg in per.values():
        if bg and sg:
            vol = min(vol, bv + sv - bg - sg)
    return bv, sv, vol


def auction_price(buys, sells, reference: int | None) -> tuple[int, int] | None:
    """The uncrossing price and its executable volume, or None if the book does not cross.

    Rule: maximum executable volume (with STP: orders of one owner never match each other,
    see :func:`executable_volume`); then minimum imbalance |buy − sell volume|; then the
    price closest to ``reference`` (ticks); then the lower price. Candidates are every limit
    price plus, in each gap between two consecutive limit prices, the point of the gap
    closest to the reference (its lowest point without one): volume and imbalance are
    constant inside a gap, so the result equals a scan over every tick."""
    prices = sorted({o[0] for o in buys} | {o[0] for o in sells})
    if not prices:
        return None
    cands = set(prices)
    for a, b in zip(prices, prices[1:]):
        if b - a > 1:  # inside a gap only the tie-breaks differ: its best point is a candidate
            cands.add(a + 1 if reference is None else min(max(reference, a + 1), b - 1))
    best = None
    for p in cands:
        bv, sv, vol = executable_volume(buys, sells, p)
        if vol <= 0:
            continue
        key = (-vol, abs(bv - sv), abs(p - reference) if reference is not None else 0, p)
        if best is None or key < best[0]:
            best = (key, p, vol)
    return None if best is None else (best[1], best[2])


def auction_fills(buys, sells, price: int, volume: int) -> list[tuple[object, object, int]]:
    """Pair the orders that execute at ``price``: buys (key, limit, qty[, owner]) in priority
    order (higher price, then earlier), sells likewise (lower price, then earlier), ``volume``
    lots in all. Returns (buy key, sell key, qty) in execution order.

    Each buy takes from the sells in priority order, skipping sells of its own owner, and
    never takes so much from one sell that ``volume`` could no longer be reached: after a
    fill of q between owners i and j the rest can still execute T − q iff q ≤ C_g − T for
    every other owner g (C_g = B + S − b_g − s_g, see :func:`executable_volume`). Those
    bounds only tighten as fills are made, so one pass in priority order reaches ``volume``."""
    bi = [[o[0], o[2], o[3] if len(o) > 3 else ("buy", n)] for n, o in enumerate(buys) if o[1] >= price]
    si = [[o[0], o[2], o[3] if len(o) > 3 else ("sell", n)] for n, o in enumerate(sells) if o[1] <= price]
    bv, sv = sum(o[1] for o in bi), sum(o[1] for o in si)
    gb: dict[object, int] = {}
    gs: dict[object, int] = {}
    for _, q, g in bi:
        gb[g] = gb.get(g, 0) + q
    for _, q, g in si:
        gs[g] = gs.get(g, 0) + q

    def slack() -> list[tuple[int, object]]:
        """The three owners with the least C_g − T (only owners on both sides can bind)."""
        both = [(bv + sv - gb[g] - gs[g] - left, g) for g in gb.keys() & gs.keys()]
        return sorted(both, key=lambda x: x[0])[:3]

    out = []
    left = volume
    tight = slack()
    for buy in bi:
        for sell in si:
            if left == 0 or buy[1] == 0:
                break
            if sell[1] == 0 or buy[2] == sell[2]:
                continue
            bound = next((c for c, g in tight if g != buy[2] and g != sell[2]), left)
            q = min(buy[1], sell[1], left, bound)
            if q <= 0:
                continue
            out.append((buy[0], sell[0], q))
            buy[1] -= q
            sell[1] -= q
            bv, sv, left = bv - q, sv - q, left - q
            gb[buy[2]] -= q
            gs[sell[2]] -= q
            tight = slack()
    if left:
        raise RuntimeError(f"auction fills reached {volume - left} of {volume} lots")  # pragma: no cover — see the docstring
    return out
