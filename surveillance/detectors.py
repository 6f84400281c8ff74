"""The detectors: pure functions from trades and orders of one market to findings.

They never touch the database — :func:`surveillance.services.detectors_run` loads the records
(what is new since the cursor plus each detector's look-back) and records the findings as
alerts. Findings are deterministic: the same records give the same findings with the same
window, so the same ``alert_key``. Statistics (returns, z-scores, ratios) are floats — they are
measurements, not money; prices and quantities stay Decimal in the evidence.

Every parameter is documented in docs/surveillance.md; :data:`DEFAULTS` holds the defaults and
compliance overrides them per detector and per market (``DetectorThreshold``).
"""
from __future__ import annotations

import hashlib
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

DEFAULTS: dict[str, dict[str, float]] = {
    # Trades between one owner or linked owners; price-neutral round trips between two owners.
    "wash": {"bucket_s": 3600, "round_trip_window_s": 300, "round_trip_price_tol": 0.002, "round_trip_qty_tol": 0.02, "min_round_trips": 2},
    # Big passive orders away from the touch, cancelled soon after the owner traded on the other side.
    "spoofing": {"large_mult": 5.0, "min_distance_bps": 5.0, "cancel_within_s": 120, "max_fill_ratio": 0.1, "bucket_s": 3600},
    # Robust z-scores (median / MAD) of 1-bar log returns and volumes over a rolling window.
    # A flagged bar counts only once a leader has sold back ≥ min_dump_share of what they bought in it.
    "pump": {"bar_s": 60, "lookback_bars": 60, "min_bars": 20, "z_return": 3.0, "z_volume": 5.0, "leader_share": 0.3, "dump_window_s": 1800,
             "return_mad_floor": 0.001, "min_dump_share": 0.05},
    # Price moved in the last window_s before a close by an account whose earlier position gains.
    # ... with an aggressive volume of at least min_volume_mult × the median trade size of the look-back.
    # The move is measured from a bounce-free reference: the mean of the last buy- and the last
    # sell-initiated price in the window_s before the window (:func:`_bounce_free_reference`).
    # The position may be up to two hours old (tuning seed 7: a marker waited for the next close).
    "marking_close": {"close_interval_s": 3600, "window_s": 120, "min_move_bps": 25.0, "min_share": 0.6, "position_lookback_s": 7200, "min_volume_mult": 5.0},
    # Orders per trade per account per bucket.
    "cancel_ratio": {"bucket_s": 3600, "min_orders": 60, "max_ratio": 30.0},
    # Orders expired or decremented by self-trade prevention per account per bucket.
    "stp_misuse": {"bucket_s": 3600, "min_prevented": 5},
}
LOOKBACK_S = {
    "wash": lambda p: p["round_trip_window_s"],
    "spoofing": lambda p: p["cancel_within_s"] * 2 + 3600,
    "pump": lambda p: p["bar_s"] * (p["lookback_bars"] + 2) + p["dump_window_s"],
    "marking_close": lambda p: p["position_lookback_s"] + p["window_s"],
    "cancel_ratio": lambda p: p["bucket_s"],
    "stp_misuse": lambda p: p["bucket_s"],
}


@dataclass(frozen=True)
class TradeRec:
    id: int
    ts: datetime
    price: Decimal
    qty: Decimal
    buyer: int
    seller: int
    taker_is_buyer: bool
    buy_order: int
    sell_order: int

    @property
    def taker(self) -> int:
        return self.buyer if self.taker_is_buyer else self.seller


@dataclass(frozen=True)
class OrderRec:
    id: int
    user: int
    side: str  # BUY / SELL
    price: Decimal | None
    qty: Decimal | None
    executed: Decimal
    prevented: Decimal
    status: str
    created: datetime
    updated: datetime


@dataclass
class Finding:
    detector: str
    accounts: tuple[int, ...]
    window_start: datetime
    window_end: datetime
    score: float
    evidence: dict = field(default_factory=dict)
    detected_at: datetime | None = None  # the time of the record that completed the pattern

    @property
    def severity(self) -> str:
        return "high" if self.score >= 3 else "medium" if self.score >= 1.5 else "low"

    def key(self, market_id: int) -> str:
        raw = f"{self.detector}|{market_id}|{','.join(map(str, self.accounts))}|{self.window_start.isoformat()}|{self.window_end.isoformat()}"
        return hashlib.sha256(raw.encode()).hexdigest()


def _bucket(ts: datetime, seconds: float) -> datetime:
    epoch = ts.timestamp()
    start = epoch - (epoch % seconds)
    return datetime.fromtimestamp(start, tz=ts.tzinfo)


def _buckets2(ts: datetime, seconds: float, half: timedelta) -> tuple[datetime, datetime]:
    """The aligned bucket of ``ts`` and the one offset by half a bucket: a burst that straddles
    a bucket boundary is still whole in one of the two."""
    return _bucket(ts, seconds), _bucket(ts - half, seconds) + half


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


# --- wash trading -------------------------------------------------------------------------------


def detect_wash(trades: list[TradeRec], *, p: dict, linked: Mapping[tuple[int, int], list] | set[tuple[int, int]], exempt: set[int] = frozenset()) -> list[Finding]:
    """Self trades and trades between linked accounts (``linked``: pair → the links' evidence,
    copied onto the finding), per pair per bucket; plus price-neutral
    round trips (A buys from B, then sells about the same quantity back to B at about the same
    price within ``round_trip_window_s``), at least ``min_round_trips`` in a bucket. Registered
    market makers (``exempt``) trade both ways with everyone by design: no round trips for them."""
    groups: dict[tuple, list[TradeRec]] = defaultdict(list)
    for t in trades:
        pair = _pair(t.buyer, t.seller)
        if t.buyer == t.seller or pair in linked:
            groups[(pair, _bucket(t.ts, p["bucket_s"]), "linked" if t.buyer != t.seller else "self")].append(t)
    # round trips
    by_pair: dict[tuple[int, int], list[TradeRec]] = defaultdict(list)
    for t in trades:
        if t.buyer != t.seller and _pair(t.buyer, t.seller) not in linked and t.buyer not in exempt and t.seller not in exempt:
            by_pair[_pair(t.buyer, t.seller)].append(t)
    window = timedelta(seconds=p["round_trip_window_s"])
    for pair, ts in by_pair.items():
        if len(ts) < 2:
            continue
        legs: list[TradeRec] = []
        used: set[int] = set()
        for i, a in enumerate(ts):
            for b in ts[i + 1:]:
                if b.ts - a.ts > window:
                    break
                if a.id in used or b.id in used or a.buyer != b.seller:
                    continue
                if abs(b.price - a.price) <= a.price * Decimal(str(p["round_trip_price_tol"])) and abs(b.qty - a.qty) <= a.qty * Decimal(str(p["round_trip_qty_tol"])):
                    legs += [a, b]
                    used |= {a.id, b.id}
                    break
        per_bucket: dict[datetime, list[TradeRec]] = defaultdict(list)
        for leg in legs:
            per_bucket[_bucket(leg.ts, p["bucket_s"])].append(leg)
        for bucket, bl in per_bucket.items():
            if len(bl) // 2 >= p["min_round_trips"]:
                groups[(pair, bucket, "round_trip")] = bl
    out = []
    for (pair, bucket, kind), ts in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        ts = sorted(ts, key=lambda t: t.id)
        accounts = tuple(sorted(set(pair)))
        volume = sum((t.qty for t in ts), Decimal(0))
        out.append(Finding(
            "wash", accounts, bucket, bucket + timedelta(seconds=p["bucket_s"]),
            score=1.0 + math.log2(len(ts)) if kind != "round_trip" else len(ts) / 2 / p["min_round_trips"] * 1.5,
            evidence={"kind": kind, "trade_ids": [t.id for t in ts], "order_ids": sorted({o for t in ts for o in (t.buy_order, t.sell_order)}), "volume": str(volume),
                      **({"links": list(linked[pair])} if kind == "linked" and isinstance(linked, Mapping) else {})},
            detected_at=ts[-1].ts if kind != "round_trip" else ts[2 * p["min_round_trips"] - 1].ts,
        ))
    return out


# --- spoofing / layering ------------------------------------------------------------------------


def detect_spoofing(orders: list[OrderRec], trades: list[TradeRec], *, p: dict, exempt: set[int] = frozenset()) -> list[Finding]:
    """Orders ``large_mult`` × the market's median order size, resting at least
    ``min_distance_bps`` from the last trade price on their own side, hardly filled
    (≤ ``max_fill_ratio``) and cancelled within ``cancel_within_s`` after their owner traded on
    the other side. One finding per owner per bucket; more such orders (layering) score higher.
    Registered market makers (``exempt``) requote both sides all day and are left out."""
    sizes = [o.qty for o in orders if o.qty]
    if not sizes:
        return []
    median = statistics.median(sizes)
    trades = sorted(trades, key=lambda t: t.id)
    by_owner_side: dict[tuple[int, str], list[TradeRec]] = defaultdict(list)
    for t in trades:
        by_owner_side[(t.buyer, "BUY")].append(t)
        by_owner_side[(t.seller, "SELL")].append(t)
    hits: dict[tuple[int, datetime], list[tuple[OrderRec, TradeRec]]] = defaultdict(list)
    within = timedelta(seconds=p["cancel_within_s"])
    for o in orders:
        if o.status != "CANCELED" or o.user in exempt or not o.qty or not o.price or o.qty < median * Decimal(str(p["large_mult"])):
            continue
        if o.executed > o.qty * Decimal(str(p["max_fill_ratio"])):
            continue
        before = [t for t in trades if t.ts <= o.created]
        if not before:
            continue
        last = before[-1].price
        distance_bps = float((last - o.price) / last * 10000) if o.side == "BUY" else float((o.price - last) / last * 10000)
        if distance_bps < p["min_distance_bps"]:
            continue
        other = "SELL" if o.side == "BUY" else "BUY"
        execs = [t for t in by_owner_side[(o.user, other)] if o.created <= t.ts <= o.updated and o.updated - t.ts <= within]
        if execs:
            hits[(o.user, _bucket(o.created, p["bucket_s"]))].append((o, execs[-1]))
    out = []
    for (user, bucket), items in sorted(hits.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        out.append(Finding(
            "spoofing", (user,), bucket, bucket + timedelta(seconds=p["bucket_s"]),
            score=1.0 + len(items) * 0.5 + max(float(o.qty / median) for o, _ in items) / p["large_mult"],
            evidence={"order_ids": sorted(o.id for o, _ in items), "trade_ids": sorted({t.id for _, t in items}), "median_order_qty": str(median)},
            detected_at=min(o.updated for o, _ in items),
        ))
    return out


# --- pump and dump / momentum ignition ----------------------------------------------------------


def _robust_z(value: float, history: list[float], floor: float) -> float:
    med = statistics.median(history)
    mad = statistics.median([abs(h - med) for h in history]) * 1.4826
    return (value - med) / max(mad, floor)


def bars_build(trades: list[TradeRec], bar_s: float) -> list[dict]:
    bars: dict[datetime, dict] = {}
    for t in sorted(trades, key=lambda t: t.id):
        b = bars.setdefault(_bucket(t.ts, bar_s), {"start": _bucket(t.ts, bar_s), "open": t.price, "close": t.price, "high": t.price, "low": t.price, "volume": Decimal(0), "trades": []})
        b["close"] = t.price
        b["high"] = max(b["high"], t.price)
        b["low"] = min(b["low"], t.price)
        b["volume"] += t.qty
        b["trades"].append(t)
    return [bars[k] for k in sorted(bars)]


def _excursion(bar: dict, prev: dict) -> float:
    """The bar's largest log move from the previous close (to its high or its low): a
    momentum push that the book absorbs within the minute still shows."""
    up = math.log(float(bar["high"]) / float(prev["close"]))
    down = math.log(float(bar["low"]) / float(prev["close"]))
    return up if abs(up) >= abs(down) else down


def _dump_time(leaders: list[int], took: dict[int, Decimal], later: list[TradeRec], *, up: bool, share: Decimal) -> dict[int, datetime]:
    """Leader → the time their trades the other way reached ``share`` of what they took."""
    out: dict[int, datetime] = {}
    back: dict[int, Decimal] = defaultdict(Decimal)
    for t in later:
        u = t.seller if up else t.buyer
        if u in took and u in leaders and u not in out and t.buyer != t.seller:
            back[u] += t.qty
            if back[u] >= took[u] * share:
                out[u] = t.ts
    return out


def detect_pump(trades: list[TradeRec], *, p: dict) -> list[Finding]:
    """A bar whose log return and volume both have robust z-scores (median/MAD over the
    previous ``lookback_bars`` bars) above ``z_return`` / ``z_volume``, not preceded by a
    flagged bar (one finding per episode). Leaders: takers with ≥ ``leader_share`` of the bar's
    aggressive volume in the move's direction. It is a pump-and-dump only once a leader has
    traded back (``sold_into``) at least ``min_dump_share`` of what they took in the bar within
    ``dump_window_s``: a one-sided burst (a large investor, a close being marked — its own
    detector) is not. The finding is dated by that dump, so it appears when the dump does."""
    bars = bars_build(trades, p["bar_s"])
    out = []
    flagged_prev = False
    for i in range(1, len(bars)):
        hist = bars[max(0, i - int(p["lookback_bars"])):i]
        bar = bars[i]
        r = _excursion(bar, bars[i - 1])
        if len(hist) < p["min_bars"] + 1:
            flagged_prev = False
            continue
        rets = [_excursion(hist[j], hist[j - 1]) for j in range(1, len(hist))]
        vols = [float(h["volume"]) for h in hist]
        zr = _robust_z(r, rets, p.get("return_mad_floor", 0.001))
        zv = _robust_z(float(bar["volume"]), vols, max(statistics.median(vols) * 0.1, 1e-9))
        flagged = abs(zr) >= p["z_return"] and zv >= p["z_volume"]
        if flagged and not flagged_prev:
            up = r > 0
            aggressive: dict[int, Decimal] = defaultdict(Decimal)
            for t in bar["trades"]:
                if t.taker_is_buyer == up:
                    aggressive[t.taker] += t.qty
            total = sum(aggressive.values(), Decimal(0)) or Decimal(1)
            leaders = sorted(u for u, q in aggressive.items() if q / total >= Decimal(str(p["leader_share"])))
            end = bar["start"] + timedelta(seconds=p["bar_s"])
            later = [t for t in trades if bar["start"] <= t.ts < end + timedelta(seconds=p["dump_window_s"])]
            dumped_at = _dump_time(leaders, aggressive, later, up=up, share=Decimal(str(p["min_dump_share"])))
            if dumped_at:
                sold_into = sorted(dumped_at)
                out.append(Finding(
                    "pump", tuple(leaders), bar["start"], end, score=min(abs(zr) / p["z_return"], zv / p["z_volume"]) * 1.5,
                    evidence={"return_z": round(zr, 2), "volume_z": round(zv, 2), "direction": "up" if up else "down", "sold_into": sold_into,
                              "trade_ids": [t.id for t in bar["trades"]], "order_ids": sorted({t.buy_order if up else t.sell_order for t in bar["trades"]})},
                    detected_at=min(dumped_at.values()),
                ))
        flagged_prev = flagged
    return out


# --- marking the close --------------------------------------------------------------------------


def closes_between(start: datetime, end: datetime, interval_s: float, session_closes: list[datetime] | None = None) -> list[datetime]:
    first = _bucket(start, interval_s) + timedelta(seconds=interval_s)
    out = []
    c = first
    while c <= end:
        out.append(c)
        c += timedelta(seconds=interval_s)
    return sorted(set(out + [s for s in (session_closes or []) if start <= s <= end]))


def detect_marking_close(trades: list[TradeRec], *, p: dict, closes: list[datetime]) -> list[Finding]:
    """For each close and each direction: the price excursion (to the window's high, or to its
    low) over the last ``window_s`` before it of at least ``min_move_bps``, driven by pushers
    (:func:`_close_pushed_by`: each ≥ ``min_volume_mult`` × the median trade size of the
    look-back, together ≥ ``min_share`` of the aggressive volume in that direction in the
    window) who each held a position in that direction built in the ``position_lookback_s``
    before the window — the close mark pays them. One finding per pusher.
    Both directions are examined: in a thin book the bid-ask bounce can make the excursion
    *against* a push the larger one (a push up whose window also printed at a bid two levels
    down), and picking only the larger excursion missed the push (tuning seed 3).
    The move is measured from :func:`_bounce_free_reference`, not from the last trade: a last
    trade at the ask hid half the spread of a push up (tuning seed 3)."""
    out = []
    trades = sorted(trades, key=lambda t: t.id)
    w = timedelta(seconds=p["window_s"])
    for close in closes:
        before = [t for t in trades if t.ts < close - w]
        inside = [t for t in trades if close - w <= t.ts < close]
        if not before or not inside:
            continue
        ref = _bounce_free_reference(before, recent_from=close - 2 * w)  # the window_s before the window
        since = close - w - timedelta(seconds=p["position_lookback_s"])
        typical = [t.qty for t in before if t.ts >= since]
        for up, extreme in ((True, max(t.price for t in inside)), (False, min(t.price for t in inside))):
            move_bps = float((extreme - ref) / ref * 10000)
            if (move_bps if up else -move_bps) < p["min_move_bps"]:
                continue  # the high must be above the reference, the low below it: one finding per direction
            for lead, position in _close_pushed_by(before, inside, p=p, up=up, since=since, typical=typical):
                out.append(Finding(
                    "marking_close", (lead,), close - w, close, score=abs(move_bps) / p["min_move_bps"] * 1.5,
                    evidence={"close": close.isoformat(), "move_bps": round(move_bps, 1), "position": str(position),
                              "trade_ids": [t.id for t in inside], "order_ids": sorted({t.buy_order if up else t.sell_order for t in inside if t.taker == lead})},
                    detected_at=inside[-1].ts,
                ))
    return out


def _bounce_free_reference(before: list[TradeRec], *, recent_from: datetime) -> Decimal:
    """The price a close's move is measured from: the mean of the last buy-initiated and the last
    sell-initiated price before the window — about the mid, whichever side printed last. The
    last trade alone carries the bid-ask bounce (half the spread, ~10 bps in the replay): on
    tuning seed 3 it was a buy at the ask, and a push that lifted two ask levels moved the high
    only 30 bps over it. Only trades since ``recent_from`` count (a stale price of one side is
    no mid); without both sides there, the last trade."""
    recent = [t for t in before if t.ts >= recent_from]
    last_buy = next((t.price for t in reversed(recent) if t.taker_is_buyer), None)
    last_sell = next((t.price for t in reversed(recent) if not t.taker_is_buyer), None)
    if last_buy is None or last_sell is None:
        return before[-1].price
    return (last_buy + last_sell) / 2


def _close_pushed_by(before: list[TradeRec], inside: list[TradeRec], *, p: dict, up: bool, since: datetime, typical: list[Decimal]) -> list[tuple[int, Decimal]]:
    """The pushers of the window's move in direction ``up``, with their positions: takers who
    each bought (sold) at least ``min_volume_mult`` × the look-back's median trade size
    aggressively in the window and hold a position that gains from the mark — together at least
    ``min_share`` of the window's aggressive volume that way. Several pushers (two accounts
    marking the same close) are each flagged: tuning seed 3 missed the second of two markers
    whose share alone was 15 %."""
    aggressive: dict[int, Decimal] = defaultdict(Decimal)
    for t in inside:
        if t.taker_is_buyer == up:
            aggressive[t.taker] += t.qty
    total = sum(aggressive.values(), Decimal(0))
    if not total:
        return []
    floor = statistics.median(typical) * Decimal(str(p["min_volume_mult"])) if typical else Decimal(0)
    pushers = []
    for taker, q in sorted(aggressive.items(), key=lambda kv: (-kv[1], kv[0])):
        if q < floor:
            break  # an ordinary trade in a noisy minute, not a push
        position = sum(((t.qty if t.buyer == taker else -t.qty) for t in before if t.ts >= since and taker in (t.buyer, t.seller) and t.buyer != t.seller), Decimal(0))
        if position != 0 and (position > 0) == up:
            pushers.append((taker, q, position))
    if sum((q for _, q, _ in pushers), Decimal(0)) / total < Decimal(str(p["min_share"])):
        return []
    return [(taker, position) for taker, _, position in pushers]


# --- order-to-trade ratio and STP misuse --------------------------------------------------------


def detect_cancel_ratio(orders: list[OrderRec], trades: list[TradeRec], *, p: dict, exempt: set[int] = frozenset()) -> list[Finding]:
    """Accounts (not ``exempt``: registered market makers) placing at least ``min_orders`` in a
    bucket with more than ``max_ratio`` orders per trade they took part in."""
    n_orders: dict[tuple, list[int]] = defaultdict(list)
    n_trades: dict[tuple, int] = defaultdict(int)
    half = timedelta(seconds=p["bucket_s"] / 2)
    for o in orders:
        if o.user not in exempt:
            for b in _buckets2(o.created, p["bucket_s"], half):
                n_orders[(o.user, b)].append(o.id)
    for t in trades:
        for b in _buckets2(t.ts, p["bucket_s"], half):
            for u in {t.buyer, t.seller}:
                n_trades[(u, b)] += 1
    out = []
    flagged: dict[int, datetime] = {}
    for (user, bucket), ids in sorted(n_orders.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ratio = len(ids) / max(1, n_trades[(user, bucket)])
        if user in flagged and bucket < flagged[user] + timedelta(seconds=p["bucket_s"]):
            continue  # overlaps a window already flagged for this account
        if len(ids) >= p["min_orders"] and ratio > p["max_ratio"]:
            flagged[user] = bucket
            out.append(Finding("cancel_ratio", (user,), bucket, bucket + timedelta(seconds=p["bucket_s"]), score=ratio / p["max_ratio"] * 1.5,
                               evidence={"orders": len(ids), "trades": n_trades[(user, bucket)], "ratio": round(ratio, 1), "order_ids": sorted(ids)[:200]},
                               detected_at=max(o.created for o in orders if o.id == sorted(ids)[int(p["min_orders"]) - 1]) if len(ids) >= p["min_orders"] else None))
    return out


def detect_stp_misuse(orders: list[OrderRec], *, p: dict) -> list[Finding]:
    """Accounts with at least ``min_prevented`` orders expired or decremented by self-trade
    prevention in a bucket: repeatedly crossing one's own (or one's group's) resting orders."""
    hits: dict[tuple, list[OrderRec]] = defaultdict(list)
    for o in orders:
        if o.status == "EXPIRED_IN_MATCH" or o.prevented > 0:
            hits[(o.user, _bucket(o.created, p["bucket_s"]))].append(o)
    out = []
    for (user, bucket), os_ in sorted(hits.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if len(os_) >= p["min_prevented"]:
            os_.sort(key=lambda o: o.id)
            out.append(Finding("stp_misuse", (user,), bucket, bucket + timedelta(seconds=p["bucket_s"]), score=len(os_) / p["min_prevented"] * 1.5,
                               evidence={"order_ids": [o.id for o in os_], "prevented": len(os_)}, detected_at=os_[int(p["min_prevented"]) - 1].updated))
    return out
