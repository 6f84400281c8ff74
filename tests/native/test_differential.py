"""The C book and the pure-Python reference book agree on every random command stream:
identical events (or identical refusals), identical depth after each step, identical
snapshot bytes; and a snapshot restored mid-stream continues identically."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading.native import Command, OrderBook, OrderBookError, Side, StpMode, TimeInForce
from trading.native.reference import ReferenceBook

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.integers(1, 30)
owners = st.integers(1, 3)  # few owners: many self-trades
sides = st.sampled_from([Side.BUY, Side.SELL])
prices = st.integers(88, 112)
qtys = st.integers(1, 25)
stps = st.sampled_from(list(StpMode))
tifs = st.sampled_from(list(TimeInForce))



@st.composite
def limit_cmd(draw):
    tif = draw(tifs)
    post_only = tif == TimeInForce.GTC and draw(st.booleans())
    return Command.limit(draw(ids), draw(owners), draw(sides), draw(prices), draw(qtys), tif, post_only, draw(stps))


passive_cmd = st.one_of(
    st.builds(Command.limit, ids, owners, st.just(Side.BUY), st.integers(88, 100), qtys),
    st.builds(Command.limit, ids, owners, st.just(Side.SELL), st.integers(100, 112), qtys),
)
sweep_cmd = st.builds(Command.limit, ids, owners, sides, st.sampled_from([1, 10**6]), st.integers(50, 400),
                      st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]), st.just(0), stps)
market_cmd = st.builds(Command.market, ids, owners, sides, st.integers(1, 80), stps)
quote_cmd = st.builds(Command.market_quote, ids, owners, st.integers(1, 4000), stps)
cancel_cmd = st.builds(Command.cancel, ids)
reduce_cmd = st.builds(Command.reduce, ids, st.integers(-1, 25))
replace_cmd = st.builds(Command.replace, ids, prices, qtys, st.booleans().map(int), stps)
hostile_cmd = st.one_of(
    st.builds(Command.limit, ids, owners, sides, st.sampled_from([0, -5, 2**62]), st.sampled_from([0, -1, 7])),
    st.builds(Command.limit, ids, owners, st.just(2), prices, qtys),
    st.builds(Command.limit, ids, owners, sides, prices, qtys, st.just(TimeInForce.IOC), st.just(1)),
    st.builds(Command.market, ids, owners, sides, st.sampled_from([0, -3])),
    st.builds(Command.replace, ids, st.sampled_from([0, 2**62]), st.sampled_from([0, 5])),
    st.just(Command(9, 0, 0, 0, 0, 1, 1, 1, 1)),
)
command = st.one_of(
    passive_cmd, passive_cmd, passive_cmd, limit_cmd(), limit_cmd(), sweep_cmd, market_cmd, quote_cmd,
    cancel_cmd, reduce_cmd, replace_cmd, hostile_cmd,
)
streams = st.lists(command, min_size=10, max_size=100)
capacities = st.sampled_from([4, 5, 7, 16, 4096])


def apply_one(book, cmd):
    try:
        return ("ok", _single(book, cmd))
    except OrderBookError as exc:
        return ("error", type(exc).__name__)


def _single(book, c: Command):
    t = c.type
    if t == 0:
        return book.add_limit(c.order_id, c.owner, c.side, c.price, c.qty, c.tif, c.post_only, c.stp)
    if t == 1:
        return book.add_market(c.order_id, c.owner, c.side, c.qty, c.stp)
    if t == 2:
        return book.add_market_quote(c.order_id, c.owner, c.qty, c.stp)
    if t == 3:
        return book.cancel(c.order_id)
    if t == 4:
        return book.reduce(c.order_id, c.qty)
    if t == 5:
        return book.replace(c.order_id, c.price, c.qty, c.post_only, c.stp)
    return book.execute([c])  # unknown type: only the batch API can carry it


def assert_same_state(native: OrderBook, ref: ReferenceBook) -> None:
    assert native.depth(1000) == ref.depth(1000)
    assert len(native) == len(ref)
    assert native.best_bid() == ref.best_bid() and native.best_ask() == ref.best_ask()
    assert native.sequence == ref.sequence


@SETTINGS
@given(stream=streams, cap=capacities)
def test_single_calls_give_identical_events_and_depth(stream, cap):
    native, ref = OrderBook(event_capacity=cap), ReferenceBook()
    for cmd in stream:
        assert apply_one(native, cmd) == apply_one(ref, cmd), cmd
        assert_same_state(native, ref)
    assert native.snapshot() == ref.snapshot()
    for oid in range(1, 31):
        assert native.get_order(oid) == ref.get_order(oid)


@SETTINGS
@given(stream=streams, cap=capacities)
def test_batch_gives_identical_events_and_rejects_in_line(stream, cap):
    native, ref = OrderBook(event_capacity=cap), ReferenceBook()
    assert native.execute(stream) == ref.execute(stream)
    assert_same_state(native, ref)
    assert native.snapshot() == ref.snapshot()


@SETTINGS
@given(stream=streams, cap=capacities)
def test_buffer_batch_equals_list_batch(stream, cap):
    from trading.native import CommandBuffer

    a, b = OrderBook(event_capacity=cap), OrderBook()
    events = b.execute_buffer(CommandBuffer.from_commands(stream))
    assert a.execute(stream) == events.to_list()
    assert a.snapshot() == b.snapshot()


@SETTINGS
@given(prefix=streams, suffix=streams)
def test_snapshot_restore_mid_stream_continues_identically(prefix, suffix):
    native, ref = OrderBook(), ReferenceBook()
    native.execute(prefix)
    ref.execute(prefix)
    data = native.snapshot()
    assert data == ref.snapshot()
    restored, ref_restored = OrderBook.restore(data), ReferenceBook.restore(data)
    assert restored.snapshot() == data
    expected = native.execute(suffix)
    assert restored.execute(suffix) == expected
    assert ref_restored.execute(suffix) == expected
    assert restored.snapshot() == native.snapshot() == ref_restored.snapshot()


@pytest.mark.parametrize("seed", range(3))
def test_long_random_stream_with_many_levels_agrees(seed):
    """A longer stream than Hypothesis builds: deep books, wide sweeps."""
    import random

    rng = random.Random(seed)
    native, ref = OrderBook(event_capacity=8), ReferenceBook()
    stream = []
    for _ in range(4000):
        r = rng.random()
        oid = rng.randint(1, 600)
        owner = rng.randint(1, 5)
        side = rng.choice([Side.BUY, Side.SELL])
        if r < 0.55:
            base = 1000 - rng.randint(1, 300) if side == Side.BUY else 1000 + rng.randint(1, 300)
            stream.append(Command.limit(oid, owner, side, base, rng.randint(1, 50)))
        elif r < 0.65:
            stream.append(Command.limit(oid, owner, side, rng.randint(700, 1300), rng.randint(1, 2000),
                                        rng.choice(list(TimeInForce)), 0, rng.choice(list(StpMode))))
        elif r < 0.7:
            stream.append(Command.market_quote(oid, owner, rng.randint(1, 500_000), rng.choice(list(StpMode))))
        elif r < 0.8:
            stream.append(Command.cancel(oid))
        elif r < 0.9:
            stream.append(Command.reduce(oid, rng.randint(1, 40)))
        else:
            stream.append(Command.replace(oid, rng.randint(800, 1200), rng.randint(1, 60), 0, rng.choice(list(StpMode))))
    for chunk in range(0, len(stream), 500):
        part = stream[chunk:chunk + 500]
        assert native.execute(part) == ref.execute(part)
        assert_same_state(native, ref)
    assert native.snapshot() == ref.snapshot()
