"""The C book's volatility band (``OrderBook.set_band``) equals the reference book's: on
random command streams with a random band, identical events (refusals included), identical
depth and identical band state after every step; a batch under ``BandMode.HALT`` stops at the
same refusal; the band limits equal the Python formula; and no print ever falls outside the
band in force when its command started."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.native.test_differential import apply_one, assert_same_state, command
from trading.native import BandMode, BandState, Command, EventKind, InvalidArgument, OrderBook, Reason, Side
from trading.native.reference import ReferenceBook
from trading.native.types import band_range

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pcts = st.tuples(st.integers(0, 40), st.sampled_from([1, 2, 4, 10]))  # 0 .. 40 %: the streams span ±12 %


@st.composite
def band_states(draw, mode=None):
    """A consistent band state around the test streams' prices (88..112)."""
    last = draw(st.integers(90, 110))
    ref_count = draw(st.integers(0, 5))
    ref_sum = sum(draw(st.lists(st.integers(90, 110), min_size=ref_count, max_size=ref_count)))
    dyn = draw(st.lists(st.integers(90, 110), max_size=5))
    (sn, sd), (dn, dd) = draw(pcts), draw(pcts)
    m = draw(st.sampled_from(list(BandMode))) if mode is None else mode
    return BandState(last, ref_sum, ref_count, max(dyn, default=0), min(dyn, default=0), len(dyn), sn, sd, dn, dd, m)


def same_band(native: OrderBook, ref: ReferenceBook) -> None:
    assert native.band() == ref.band()
    assert native.band_range() == ref.band_range()


@SETTINGS
@given(book=st.lists(command, max_size=40), band=band_states(), stream=st.lists(command, min_size=5, max_size=60))
def test_single_calls_with_a_band_give_identical_events_depth_and_band(book, band, stream):
    native, ref = OrderBook(event_capacity=5), ReferenceBook()
    native.execute(book)
    ref.execute(book)
    native.set_band(band)
    ref.set_band(band)
    for cmd in stream:
        limits = band_range(ref.band())
        got = apply_one(native, cmd)
        assert got == apply_one(ref, cmd), cmd
        assert_same_state(native, ref)
        same_band(native, ref)
        if got[0] == "ok" and limits is not None:  # the property: nothing prints outside the band in force
            lo, hi = limits
            assert all(lo <= e.price <= hi for e in got[1] if e.kind == EventKind.TRADE)


@SETTINGS
@given(book=st.lists(command, max_size=40), band=band_states(), stream=st.lists(command, min_size=5, max_size=60),
       cap=st.sampled_from([4, 7, 4096]))
def test_a_batch_with_a_band_stops_or_skips_at_the_same_refusal(book, band, stream, cap):
    native, ref = OrderBook(event_capacity=cap), ReferenceBook()
    native.execute(book)
    ref.execute(book)
    native.set_band(band)
    ref.set_band(band)
    events = native.execute(stream)
    assert events == ref.execute(stream)
    assert_same_state(native, ref)
    same_band(native, ref)
    refusals = [i for i, e in enumerate(events) if e.reason == Reason.OUTSIDE_BAND]
    if band.mode == BandMode.HALT and refusals:
        assert refusals == [len(events) - 1]  # the first refusal ended the batch


@SETTINGS
@given(book=st.lists(command, max_size=40), band=band_states(mode=BandMode.HALT), stream=st.lists(command, min_size=5, max_size=60))
def test_the_buffer_batch_stops_at_the_refusal_like_the_list_batch(book, band, stream):
    from trading.native import CommandBuffer

    a, b = OrderBook(), OrderBook()
    a.execute(book)
    b.execute(book)
    a.set_band(band)
    b.set_band(band)
    assert a.execute(stream) == b.execute_buffer(CommandBuffer.from_commands(stream)).to_list()
    assert a.snapshot() == b.snapshot()


@given(last=st.integers(-5, 2**40), ref=st.lists(st.integers(1, 2**40), max_size=6), dyn=st.lists(st.integers(1, 2**40), max_size=6),
       s=st.tuples(st.integers(0, 10**9), st.integers(1, 10**4)), x=st.tuples(st.integers(0, 10**9), st.integers(1, 10**4)))
@settings(max_examples=500, deadline=None)
def test_the_c_band_limits_equal_the_python_formula(last, ref, dyn, s, x):
    state = BandState(max(last, 1) if ref or dyn else last, sum(ref), len(ref), max(dyn, default=0), min(dyn, default=0), len(dyn), *s, *x)
    book = OrderBook()
    book.set_band(state)
    assert book.band_range() == band_range(state)


def test_the_band_refuses_the_whole_order_and_reports_the_first_print_outside():
    book = OrderBook()
    book.add_limit(1, 1, Side.SELL, 104, 1)
    book.add_limit(2, 1, Side.SELL, 110, 1)
    book.set_band(BandState(100))  # ±5 % static, ±10 % dynamic: [95, 105]
    assert book.band_range() == (95, 105)
    [e] = book.add_limit(3, 2, Side.BUY, 110, 2)
    assert (e.kind, e.reason, e.price, e.qty) == (EventKind.REJECTED, Reason.OUTSIDE_BAND, 110, 2)
    assert book.depth(5) == ([], [(104, 1, 1), (110, 1, 1)])  # not even the 104 printed
    events = book.execute([Command.limit(4, 2, Side.BUY, 104, 1), Command.market(5, 2, Side.BUY, 5), Command.limit(6, 2, Side.BUY, 90, 1)])
    assert [e.kind for e in events] == [EventKind.ACCEPTED, EventKind.TRADE, EventKind.REJECTED]  # HALT: order 6 never ran
    assert book.band().last == 104 and book.get_order(6) is None


@pytest.mark.parametrize("bad", [
    BandState(100, static_den=0), BandState(0, ref_sum=100, ref_count=1), BandState(100, mode=7),
    BandState(100, high=100, low=101, dyn_count=1), BandState(100, ref_sum=-1),
])
def test_an_inconsistent_band_is_refused_by_both_books(bad):
    for book in (OrderBook(), ReferenceBook()):
        with pytest.raises(InvalidArgument):
            book.set_band(bad)


@pytest.mark.parametrize("seed", range(3))
def test_long_random_streams_with_a_moving_band_agree_and_exercise_refusals(seed):
    """Longer than Hypothesis builds: a deep book around 1000, sweeps and market orders, the band
    re-armed from the reference's state every 50 commands (as the engine does per call)."""
    import random

    rng = random.Random(seed)
    native, ref = OrderBook(event_capacity=8), ReferenceBook()
    state = BandState(1000, static_num=3, static_den=1, dynamic_num=5, dynamic_den=1, mode=BandMode.SKIP)
    trades = refusals = 0
    for step in range(3000):
        if step % 50 == 0:
            state = (ref.band() or state)._replace(mode=rng.choice(list(BandMode)))
            native.set_band(state)
            ref.set_band(state)
        oid, owner, side = rng.randint(1, 400), rng.randint(1, 5), rng.choice([Side.BUY, Side.SELL])
        r = rng.random()
        if r < 0.6:
            off = rng.randint(1, 80)
            cmd = Command.limit(oid, owner, side, 1000 - off if side == Side.BUY else 1000 + off, rng.randint(1, 30))
        elif r < 0.8:
            cmd = Command.limit(oid, owner, side, rng.randint(930, 1070), rng.randint(1, 200), rng.randint(0, 2), 0, rng.randint(0, 4))
        elif r < 0.9:
            cmd = Command.market(oid, owner, side, rng.randint(1, 150), rng.randint(0, 4))
        else:
            cmd = Command.cancel(oid)
        got = apply_one(native, cmd)
        assert got == apply_one(ref, cmd), (step, cmd)
        if got[0] == "ok":
            trades += sum(e.kind == EventKind.TRADE for e in got[1])
            refusals += sum(e.reason == Reason.OUTSIDE_BAND for e in got[1])
        same_band(native, ref)
    assert_same_state(native, ref)
    assert trades > 100 and refusals > 10  # the stream really moved the band and hit it


def test_the_packed_band_layout_is_the_c_struct():
    """``OrderBook.set_band`` packs a BandState with struct; the layout is the compiler's."""
    from trading.native import book as wrapper
    from trading.native._orderbook import ffi

    assert wrapper._BAND.size == ffi.sizeof("ob_band") == 72
    offsets = [ffi.offsetof("ob_band", f) for f in BandState._fields]
    assert offsets == [0, 8, 16, 24, 32, 40, 48, 52, 56, 60, 64]
    state = BandState(101, 301, 3, 102, 100, 3, 5, 2, 10, 1, BandMode.SKIP)
    book = OrderBook()
    book.set_band(state)
    assert book.band() == state
