"""Volatility halts, the pure parts: the auction price against a brute-force scan of every
tick, the auction fills, the band tracker against recomputation, and the band the C book
enforces against the exact band (docs/halts.md; the C check itself:
tests/native/test_band_differential.py)."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, UTC
from decimal import Decimal as D
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from trading.engine import halts
from trading.native import OrderBook

orders = st.lists(st.tuples(st.integers(1, 30), st.integers(1, 10)), max_size=8)


def brute_force_auction(buys, sells, reference):
    """Every tick from below the lowest to above the highest limit price, by the documented
    rule: max volume, then min imbalance, then closest to the reference, then lower price."""
    prices = [p for p, _ in buys] + [p for p, _ in sells]
    if not prices:
        return None
    best = None
    for p in range(min(prices) - 2, max(prices) + 3):
        bv = sum(q for bp, q in buys if bp >= p)
        sv = sum(q for sp, q in sells if sp <= p)
        vol = min(bv, sv)
        if vol <= 0:
            continue
        key = (-vol, abs(bv - sv), abs(p - reference) if reference is not None else 0, p)
        if best is None or key < best[0]:
            best = (key, p, vol)
    return None if best is None else (best[1], best[2])


@given(buys=orders, sells=orders, reference=st.none() | st.integers(-5, 40))
@settings(max_examples=400, deadline=None)
def test_auction_price_maximises_volume_and_equals_the_brute_force_scan(buys, sells, reference):
    got = halts.auction_price(buys, sells, reference)
    want = brute_force_auction(buys, sells, reference)
    if want is None:
        assert got is None
        return
    assert got == want
    # No other price executes more.
    for p in range(0, 35):
        bv, sv = halts.auction_volumes(buys, sells, p)
        assert min(bv, sv) <= got[1]


def test_auction_prefers_minimum_imbalance_then_the_price_closest_to_the_reference():
    # Volume 5 at every price in 10..12; imbalance is 0 only at 11.
    assert halts.auction_price([(12, 5), (11, 5)], [(10, 5), (11, 5)], reference=None) == (11, 10)
    # Same volume and imbalance on the whole gap 11..19: the reference decides.
    assert halts.auction_price([(20, 5)], [(10, 5)], reference=14) == (14, 5)
    assert halts.auction_price([(20, 5)], [(10, 5)], reference=99) == (20, 5)
    assert halts.auction_price([(20, 5)], [(10, 5)], reference=None) == (10, 5)
    assert halts.auction_price([(9, 5)], [(10, 5)], reference=10) is None


@given(buys=orders, sells=orders, reference=st.none() | st.integers(0, 35))
@settings(max_examples=200, deadline=None)
def test_auction_fills_execute_the_volume_in_priority_and_leave_an_uncrossed_book(buys, sells, reference):
    found = halts.auction_price(buys, sells, reference)
    if found is None:
        return
    price, volume = found
    b = sorted([(i, p, q) for i, (p, q) in enumerate(buys)], key=lambda o: (-o[1], o[0]))
    s = sorted([(i, p, q) for i, (p, q) in enumerate(sells)], key=lambda o: (o[1], o[0]))
    fills = halts.auction_fills(b, s, price, volume)
    assert sum(q for _, _, q in fills) == volume
    left_b = {i: q for i, _, q in b}
    left_s = {i: q for i, _, q in s}
    for bi, si, q in fills:
        assert buys[bi][0] >= price >= sells[si][0]
        left_b[bi] -= q
        left_s[si] -= q
        assert left_b[bi] >= 0 and left_s[si] >= 0
    best_bid = max((buys[i][0] for i, q in left_b.items() if q), default=None)
    best_ask = min((sells[i][0] for i, q in left_s.items() if q), default=None)
    assert best_bid is None or best_ask is None or best_bid < best_ask


T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARAMS = halts.BandParams(reference_minutes=5, static_pct=D("5"), dynamic_minutes=20, dynamic_pct=D("10"), pause_seconds=0)


@given(st.lists(st.tuples(st.integers(0, 120), st.integers(50, 150)), min_size=1, max_size=40), st.integers(0, 60))
@settings(max_examples=200, deadline=None)
def test_band_tracker_equals_recomputation_over_the_windows(steps, later):
    tracker = halts.BandTracker(PARAMS)
    t = T0
    history = []
    for dt, price in steps:
        t += timedelta(seconds=dt * 10)
        tracker.add(t, D(price))
        history.append((t, D(price)))
    now = t + timedelta(minutes=later)
    ref_prices = [p for at, p in history if at >= now - timedelta(minutes=5)] or [history[-1][1]]
    dyn_prices = [p for at, p in history if at >= now - timedelta(minutes=20)] or [history[-1][1]]
    ref = sum(ref_prices) / len(ref_prices)
    want = (max(ref * D("0.95"), min(dyn_prices) * D("0.9")), min(ref * D("1.05"), max(dyn_prices) * D("1.1")))
    assert tracker.band(now) == want


def test_band_tracker_has_no_band_before_the_first_trade_and_the_last_price_after_a_quiet_spell():
    tracker = halts.BandTracker(PARAMS)
    assert tracker.band(T0) is None
    tracker.add(T0, D("100"))
    assert tracker.band(T0 + timedelta(hours=5)) == (D("95"), D("105"))
    assert halts.band_ticks((D("95.001"), D("104.999")), D("0.01")) == (9501, 10499)


@given(st.lists(st.tuples(st.integers(0, 120), st.integers(5000, 15000)), min_size=1, max_size=40), st.integers(0, 60),
       st.sampled_from([D("5"), D("2.5"), D("0.3333")]), st.sampled_from([D("10"), D("7.25")]))
@settings(max_examples=200, deadline=None)
def test_the_band_the_c_book_enforces_is_the_trackers_band_rounded_inwards(steps, later, static_pct, dynamic_pct):
    """tracker.state → OrderBook.set_band → the C book's limits = the exact band (Fractions,
    no Decimal rounding) rounded inwards to whole ticks; tracker.limits says the same."""
    params = halts.BandParams(reference_minutes=5, static_pct=static_pct, dynamic_minutes=20, dynamic_pct=dynamic_pct, pause_seconds=0)
    tick = D("0.01")
    tracker = halts.BandTracker(params)
    t = T0
    history = []
    for dt, ticks in steps:
        t += timedelta(seconds=dt * 10)
        tracker.add(t, ticks * tick)
        history.append((t, Fraction(ticks)))
    now = t + timedelta(minutes=later)
    ref_prices = [p for at, p in history if at >= now - timedelta(minutes=5)] or [history[-1][1]]
    dyn_prices = [p for at, p in history if at >= now - timedelta(minutes=20)] or [history[-1][1]]
    ref = sum(ref_prices) / len(ref_prices)
    s, x = Fraction(static_pct) / 100, Fraction(dynamic_pct) / 100
    lo = max(ref * (1 - s), min(dyn_prices) * (1 - x))
    hi = min(ref * (1 + s), max(dyn_prices) * (1 + x))
    want = (math.ceil(lo), math.floor(hi))
    book = OrderBook()
    book.set_band(tracker.state(now, tick))
    assert book.band_range() == want
    assert tracker.limits(now, tick) == (want[0] * tick, want[1] * tick)


# --- the auction with every order type and STP --------------------------------------------
# Market orders enter the pure functions as limit orders at their extreme: a market sell at one
# tick, a market buy at its protection price (here 40); IOC limits at their limit. Owners: a
# few, so that the same owner often sits on both sides.

MARKET_SELL, MARKET_BUY_PROTECTION = 1, 40
owned = st.lists(
    st.tuples(st.one_of(st.integers(2, 30), st.just(0)), st.integers(1, 10), st.integers(1, 3)), max_size=8,
)


def _as_buys(rows):
    return [(MARKET_BUY_PROTECTION if p == 0 else p, q, g) for p, q, g in rows]


def _as_sells(rows):
    return [(MARKET_SELL if p == 0 else p, q, g) for p, q, g in rows]


def max_flow_volume(buys, sells, p):
    """The most that can execute at p when no order meets an order of its own owner: a max flow
    source → buys → sells of other owners → sink, by augmenting paths (independent of the
    closed form in halts.executable_volume)."""
    bs = [q for bp, q, _ in buys if bp >= p]
    bo = [g for bp, _, g in buys if bp >= p]
    ss = [q for sp, q, _ in sells if sp <= p]
    so = [g for sp, _, g in sells if sp <= p]
    flow = [[0] * len(ss) for _ in bs]
    total = 0
    while True:  # BFS over the residual graph: source -> buy i -> sell j (i, j of other owners) -> sink
        prev = {("s",): None}
        queue = [("s",)]
        end = None
        while queue and end is None:
            node = queue.pop(0)
            if node == ("s",):
                nxt = [(("b", i), bs[i] - sum(flow[i])) for i in range(len(bs))]
            elif node[0] == "b":
                i = node[1]
                nxt = [(("x", j), 10**9) for j in range(len(ss)) if bo[i] != so[j]]
            else:
                j = node[1]
                nxt = [(("b", i), flow[i][j]) for i in range(len(bs))] + [(("t",), ss[j] - sum(flow[k][j] for k in range(len(bs))))]
            for n, cap in nxt:
                if cap > 0 and n not in prev:
                    prev[n] = node
                    if n == ("t",):
                        end = n
                        break
                    queue.append(n)
        if end is None:
            return total
        path = [end]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        path.reverse()
        caps = []
        for a, b in zip(path, path[1:]):
            if a == ("s",):
                caps.append(bs[b[1]] - sum(flow[b[1]]))
            elif b == ("t",):
                caps.append(ss[a[1]] - sum(flow[k][a[1]] for k in range(len(bs))))
            elif a[0] == "b":
                caps.append(10**9)
            else:
                caps.append(flow[b[1]][a[1]])
        d = min(caps)
        for a, b in zip(path, path[1:]):
            if a[0] == "b" and b[0] == "x":
                flow[a[1]][b[1]] += d
            elif a[0] == "x" and b[0] == "b":
                flow[b[1]][a[1]] -= d
        total += d


@given(buys=owned, sells=owned, reference=st.none() | st.integers(0, 45))
@settings(max_examples=300, deadline=None)
def test_auction_with_market_orders_and_stp_maximises_volume_against_a_max_flow_scan(buys, sells, reference):
    buys, sells = _as_buys(buys), _as_sells(sells)
    got = halts.auction_price(buys, sells, reference)
    best = None
    for p in range(0, 46):  # every tick, by the documented rule, volumes from the max flow
        vol = max_flow_volume(buys, sells, p)
        if vol <= 0:
            continue
        bv, sv = halts.auction_volumes(buys, sells, p)
        key = (-vol, abs(bv - sv), abs(p - reference) if reference is not None else 0, p)
        best = min(best, (key, p, vol)) if best else (key, p, vol)
    assert got == (None if best is None else (best[1], best[2]))


@given(buys=owned, sells=owned, reference=st.none() | st.integers(0, 45))
@settings(max_examples=300, deadline=None)
def test_auction_fills_with_stp_reach_the_volume_and_never_pair_one_owner(buys, sells, reference):
    buys, sells = _as_buys(buys), _as_sells(sells)
    found = halts.auction_price(buys, sells, reference)
    if found is None:
        return
    price, volume = found
    b = sorted([(i, p, q, g) for i, (p, q, g) in enumerate(buys)], key=lambda o: (-o[1], o[0]))
    s = sorted([(i, p, q, g) for i, (p, q, g) in enumerate(sells)], key=lambda o: (o[1], o[0]))
    fills = halts.auction_fills(b, s, price, volume)
    assert sum(q for _, _, q in fills) == volume
    left_b = {i: q for i, _, q, _ in b}
    left_s = {i: q for i, _, q, _ in s}
    for bi, si, q in fills:
        assert buys[bi][0] >= price >= sells[si][0] and buys[bi][2] != sells[si][2]
        left_b[bi] -= q
        left_s[si] -= q
        assert left_b[bi] >= 0 and left_s[si] >= 0
    # What is left crosses only within one owner: no two owners could still trade.
    for bi, qb in left_b.items():
        for si, qs in left_s.items():
            if qb and qs and buys[bi][2] != sells[si][2]:
                assert buys[bi][0] < price or sells[si][0] > price
