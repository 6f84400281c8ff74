"""The detectors as pure functions: each fires on its pattern and stays quiet on the near miss."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from surveillance import detectors as d

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def trade(i, sec, price, qty, buyer, seller, taker_is_buyer=True):
    return d.TradeRec(i, T0 + timedelta(seconds=sec), D(str(price)), D(str(qty)), buyer, seller, taker_is_buyer, 1000 + i, 2000 + i)


def order(i, user, side, price, qty, sec, cancel_sec, status="CANCELED", executed="0", prevented="0"):
    return d.OrderRec(i, user, side, D(str(price)), D(str(qty)), D(executed), D(prevented), status, T0 + timedelta(seconds=sec), T0 + timedelta(seconds=cancel_sec))


P = {name: dict(v) for name, v in d.DEFAULTS.items()}


def test_wash_flags_self_trades_and_linked_pairs_but_not_strangers():
    trades = [trade(1, 0, 100, 1, 5, 5), trade(2, 10, 100, 1, 6, 7), trade(3, 20, 100, 1, 8, 9)]
    found = d.detect_wash(trades, p=P["wash"], linked={(6, 7)})
    assert sorted(f.accounts for f in found) == [(5,), (6, 7)]
    assert {f.evidence["kind"] for f in found} == {"self", "linked"}


def test_wash_round_trips_need_the_minimum_count_and_matching_legs():
    legs = [trade(1, 0, 100, 2, 1, 2), trade(2, 30, 100.1, 2, 2, 1), trade(3, 60, 100, 3, 1, 2), trade(4, 90, 100, 3, 2, 1)]
    found = d.detect_wash(legs, p=P["wash"], linked=set())
    assert [(f.accounts, f.evidence["kind"]) for f in found] == [((1, 2), "round_trip")]
    # one round trip only, or a leg of a different size: nothing
    assert d.detect_wash(legs[:2], p=P["wash"], linked=set()) == []
    odd = legs[:3] + [trade(4, 90, 100, 5, 2, 1)]
    assert d.detect_wash(odd, p=P["wash"], linked=set()) == []
    # a registered market maker trading both ways is not a round trip
    assert d.detect_wash(legs, p=P["wash"], linked=set(), exempt={2}) == []


def test_spoofing_needs_large_away_cancelled_after_an_opposite_execution():
    background = [order(i, 50 + i, "BUY", 99.9, 1, 0, 5, status="FILLED", executed="1") for i in range(1, 20)]
    trades = [trade(1, 0, 100, 1, 30, 31), trade(2, 40, 99.9, 1, 40, 7, taker_is_buyer=False)]
    spoof = order(100, 7, "BUY", 99.0, 20, 30, 60)
    found = d.detect_spoofing(background + [spoof], trades, p=P["spoofing"])
    assert [f.accounts for f in found] == [(7,)] and found[0].evidence["order_ids"] == [100]
    # the same order, but its owner never traded the other side: no alert
    assert d.detect_spoofing(background + [spoof], trades[:1], p=P["spoofing"]) == []
    # small order: no alert
    assert d.detect_spoofing(background + [order(100, 7, "BUY", 99.0, 2, 30, 60)], trades, p=P["spoofing"]) == []
    # at the touch (not away): no alert
    assert d.detect_spoofing(background + [order(100, 7, "BUY", 100.0, 20, 30, 60)], trades, p=P["spoofing"]) == []


def _quiet(n, start_id=1):
    out = []
    for i in range(n):
        price = 100 + (0.02 if i % 2 else -0.02)
        out.append(trade(start_id + i, i * 60 + 5, price, 1, 10 + i % 3, 20 + i % 4, i % 2 == 0))
    return out


def test_pump_flags_a_return_and_volume_outlier_and_names_the_leader_who_sold_into_it():
    quiet = _quiet(40)
    base = 40 * 60
    pump = [trade(100 + k, base + 5 + k, 100.5 + k * 0.4, 10, 99, 20 + k, True) for k in range(5)]
    dump = [trade(200, base + 200, 101.5, 30, 21, 99, False)]
    found = d.detect_pump(quiet + pump + dump, p=P["pump"])
    assert len(found) == 1
    assert found[0].accounts == (99,) and found[0].evidence["sold_into"] == [99]


def test_pump_needs_the_leader_to_sell_back_a_share_of_the_move_within_the_dump_window():
    quiet = _quiet(40)
    base = 40 * 60
    pump = [trade(100 + k, base + 5 + k, 100.5 + k * 0.4, 10, 99, 20 + k, True) for k in range(5)]
    # bought 50 and kept it: a one-sided burst, not a pump-and-dump
    assert d.detect_pump(quiet + pump, p=P["pump"]) == []
    # sold back 2 of 50 (< min_dump_share 0.05): still not
    small = [trade(200, base + 200, 101.5, 2, 21, 99, False)]
    assert d.detect_pump(quiet + pump + small, p=P["pump"]) == []
    # sold back 30, but after the dump window: not
    late = [trade(200, base + 60 + P["pump"]["dump_window_s"] + 10, 101.5, 30, 21, 99, False)]
    assert d.detect_pump(quiet + pump + late, p=P["pump"]) == []
    # sold back 20 of 50: flagged, dated by the dump
    dump = [trade(200, base + 200, 101.5, 20, 21, 99, False)]
    found = d.detect_pump(quiet + pump + dump, p=P["pump"])
    assert [f.accounts for f in found] == [(99,)]
    assert found[0].detected_at == dump[0].ts


def test_pump_stays_quiet_on_a_large_volume_bar_without_a_price_move():
    quiet = _quiet(40)
    flat = [trade(100 + k, 40 * 60 + 5 + k, 100.0, 10, 99, 20, True) for k in range(5)]
    assert d.detect_pump(quiet + flat, p=P["pump"]) == []


def test_marking_the_close_needs_a_move_a_dominant_taker_and_a_benefiting_position():
    close = T0 + timedelta(hours=1)
    pos = [trade(1, 600, 100, 5, 7, 20), trade(2, 1200, 100, 5, 7, 21)]
    ref = [trade(3, 3000, 100, 1, 30, 31)]
    push = [trade(4, 3500, 100.3, 20, 7, 22), trade(5, 3540, 100.6, 20, 7, 23)]
    found = d.detect_marking_close(pos + ref + push, p=P["marking_close"], closes=[close])
    assert [f.accounts for f in found] == [(7,)]
    # the same move on ordinary trade sizes (< min_volume_mult × the median): noise, not a push
    ordinary = [trade(4, 3500, 100.3, 2, 7, 22), trade(5, 3540, 100.6, 2, 7, 23)]
    assert d.detect_marking_close(pos + ref + ordinary, p=P["marking_close"], closes=[close]) == []
    # no position built before: nothing to gain from the mark
    assert d.detect_marking_close(ref + push, p=P["marking_close"], closes=[close]) == []
    # a small move: nothing
    small = [trade(4, 3500, 100.1, 40, 7, 22)]
    assert d.detect_marking_close(pos + ref + small, p=P["marking_close"], closes=[close]) == []


def test_marking_the_close_finds_a_push_up_although_the_bounce_down_in_the_window_is_larger():
    """Tuning seed 3's miss: the push lifted the close 60 bps, but a background sell at a bid
    two levels down printed in the same window (80 bps below the reference). Picking only the
    larger excursion looked at the sellers and missed the push."""
    close = T0 + timedelta(hours=1)
    pos = [trade(1, 600, 100, 5, 7, 20), trade(2, 1200, 100, 5, 7, 21)]
    ref = [trade(3, 3000, 100, 1, 30, 31)]
    bounce = [trade(4, 3490, 99.2, 1, 32, 33, taker_is_buyer=False)]
    push = [trade(5, 3500, 100.3, 20, 7, 22), trade(6, 3540, 100.6, 20, 7, 23)]
    found = d.detect_marking_close(pos + ref + bounce + push, p=P["marking_close"], closes=[close])
    assert [(f.accounts, f.evidence["move_bps"]) for f in found] == [((7,), 60.0)]
    # the bounce alone (one ordinary seller, no position) is still nothing
    assert d.detect_marking_close(pos + ref + bounce, p=P["marking_close"], closes=[close]) == []


def test_marking_the_close_measures_the_move_from_the_mid_not_from_a_last_trade_at_the_ask():
    """Tuning seed 3's third miss: the last trade before the window was a buy at the ask, and a
    push that lifted two ask levels moved the high only 30 bps over it (under the old 40). From
    the mean of the last buy- and sell-initiated prices (about the mid) it is 40 bps."""
    close = T0 + timedelta(hours=1)
    pos = [trade(1, 600, 100, 5, 7, 20), trade(2, 1200, 100, 5, 7, 21)]
    bounce = [trade(3, 3400, "99.9", 1, 30, 31, taker_is_buyer=False), trade(4, 3450, "100.1", 1, 32, 33)]
    push = [trade(5, 3500, "100.25", 20, 7, 22), trade(6, 3540, "100.4", 20, 7, 23)]
    found = d.detect_marking_close(pos + bounce + push, p=P["marking_close"], closes=[close])
    assert [(f.accounts, f.evidence["move_bps"]) for f in found] == [((7,), 40.0)]
    # an ordinary buy at the ask in the window (the bounce alone, 10 bps over the mid): nothing
    ordinary = [trade(5, 3500, "100.1", 1, 34, 35)]
    assert d.detect_marking_close(pos + bounce + ordinary, p=P["marking_close"], closes=[close]) == []
    # the same push lifting one ask level only (25 bps over the last trade, 15 over the mid): nothing
    one_level = [trade(5, 3500, "100.15", 20, 7, 22), trade(6, 3540, "100.15", 20, 7, 23)]
    assert d.detect_marking_close(pos + bounce + one_level, p=P["marking_close"], closes=[close]) == []
    # a sell-initiated price older than window_s before the window is no mid: the last trade again
    # (a push to 100.3: 30 bps over the mid, 20 over the last trade)
    stale = [trade(3, 3000, "99.9", 1, 30, 31, taker_is_buyer=False), trade(4, 3450, "100.1", 1, 32, 33)]
    lower = [trade(5, 3500, "100.2", 20, 7, 22), trade(6, 3540, "100.3", 20, 7, 23)]
    assert [f.accounts for f in d.detect_marking_close(pos + bounce + lower, p=P["marking_close"], closes=[close])] == [(7,)]
    assert d.detect_marking_close(pos + stale + lower, p=P["marking_close"], closes=[close]) == []


def test_marking_the_close_counts_a_position_built_over_an_hour_before_the_push():
    """Tuning seed 7's miss: the marker bought 65 minutes before the window, then waited for the
    next close; a one-hour position look-back saw no position."""
    close = T0 + timedelta(hours=2)
    pos = [trade(1, 3000, 100, 5, 7, 20), trade(2, 3100, 100, 5, 7, 21)]  # 01:05 before the window
    quiet = [trade(3 + i, 3700 + 300 * i, 100, 1, 30 + i % 2, 31 - i % 2, taker_is_buyer=i % 2 == 0) for i in range(11)]
    push = [trade(20, 7100, 100.3, 20, 7, 22), trade(21, 7140, 100.6, 20, 7, 23)]
    found = d.detect_marking_close(pos + quiet + push, p=P["marking_close"], closes=[close])
    assert [f.accounts for f in found] == [(7,)]
    # a position older than position_lookback_s is not counted
    older = [trade(1, 3000 - 7200, 100, 5, 7, 20), trade(2, 3100 - 7200, 100, 5, 7, 21)]
    assert d.detect_marking_close(older + quiet + push, p=P["marking_close"], closes=[close]) == []


def test_marking_the_close_flags_each_of_two_accounts_marking_the_same_close():
    """Tuning seed 3: two markers pushed the same close; the second took 15 % of the window's
    buying, so a single dominant taker (≥ min_share alone) missed it."""
    close = T0 + timedelta(hours=1)
    pos = [trade(1, 600, 100, 5, 7, 20), trade(2, 900, 100, 5, 8, 21)] + [trade(3 + i, 1200 + 60 * i, 100, 1, 40, 41) for i in range(3)]
    ref = [trade(9, 3000, 100, 1, 30, 31)]  # median trade size 1: a push is ≥ 5
    push = [trade(10, 3500, 100.3, 34, 7, 22), trade(11, 3510, 100.6, 6, 8, 23)]
    found = d.detect_marking_close(pos + ref + push, p=P["marking_close"], closes=[close])
    assert sorted(f.accounts for f in found) == [(7,), (8,)]
    # a big buyer with no position beside one marker: only the marker
    push = [trade(10, 3500, 100.3, 34, 7, 22), trade(11, 3510, 100.6, 6, 9, 23)]
    assert [f.accounts for f in d.detect_marking_close(pos + ref + push, p=P["marking_close"], closes=[close])] == [(7,)]
    # pushers with a position but only 40 % of the buying between them: a broad move, nothing
    push = [trade(10, 3500, 100.3, 8, 7, 22), trade(11, 3510, 100.6, 12, 42, 23)]
    assert d.detect_marking_close(pos + ref + push, p=P["marking_close"], closes=[close]) == []


def test_cancel_ratio_flags_many_orders_per_trade_but_not_exempt_market_makers():
    orders = [order(i, 7, "BUY", 90, 1, i, i + 1) for i in range(1, 80)]
    found = d.detect_cancel_ratio(orders, [trade(1, 5, 100, 1, 7, 8)], p=P["cancel_ratio"])
    assert [f.accounts for f in found] == [(7,)]
    assert d.detect_cancel_ratio(orders, [], p=P["cancel_ratio"], exempt={7}) == []
    assert d.detect_cancel_ratio(orders[:40], [], p=P["cancel_ratio"]) == []


def test_stp_misuse_counts_orders_expired_in_match():
    expired = [order(i, 7, "BUY", 100, 1, i * 10, i * 10, status="EXPIRED_IN_MATCH", prevented="1") for i in range(1, 6)]
    assert [f.accounts for f in d.detect_stp_misuse(expired, p=P["stp_misuse"])] == [(7,)]
    assert d.detect_stp_misuse(expired[:4], p=P["stp_misuse"]) == []


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7200), st.integers(1, 5), st.integers(1, 5)), max_size=40))
def test_findings_are_deterministic_and_keys_stable(rows):
    trades = [trade(i, sec, 100, 1, b, s) for i, (sec, b, s) in enumerate(sorted(rows))]
    a = [f.key(1) for f in d.detect_wash(trades, p=P["wash"], linked={(1, 2)})]
    b = [f.key(1) for f in d.detect_wash(list(trades), p=P["wash"], linked={(1, 2)})]
    assert a == b
    assert len(set(a)) == len(a)
