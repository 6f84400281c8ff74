"""What one engine batch costs the database, and the runner's coalesced after-batch hook: the
settlement posts without savepoints, a warm one-order batch that fills takes a fixed, small
number of statements, and batch_committed runs at most once per interval per market without
ever dropping the trades in between."""
from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.trading.conftest import place
from trading.engine import runner as runner_module
from trading.engine.runner import EngineRunner
from trading.engine.signals import batch_committed
from trading.models import Trade
from wallets.models import JournalEvent, JournalEventKind
from wallets.services import DuplicateLedgerEvent, InsufficientFunds, Leg, ledger_settle


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_warm_one_order_batch_that_fills_takes_no_savepoint_one_outbox_append_and_at_most_eleven_statements(engine, market, alice, bob, settings):
    settings.KK99 = {**settings.KK99, "FEE_TIER_CACHE_SECONDS": 60}  # the production default: tiers cached
    # Arrange: one fill first, so the per-process caches (accounts, balance rows) are warm.
    for _ in range(2):
        place(alice, market, "SELL", quantity="0.01", price="100")
        engine.run_until_idle()
        place(bob, market, "BUY", quantity="0.01", price="100")
        # Act
        with CaptureQueriesContext(connection) as q:
            result = engine.process_batch()
    # Assert: it filled; no savepoint; BEGIN, state lock, claim, order update, fee preferences,
    # COPY trades, balance lock, ONE statement for the journal event + entries + balances, ONE
    # outbox append (the market stream's and the balance events together), state update,
    # COMMIT. (kk99.db.pg_cursor's server-bound statements are captured too.)
    assert result.trades == 1 and Trade.objects.count() == 2
    statements = [x["sql"] for x in q.captured_queries]
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]
    assert not [s for s in statements if "wallets_account" in s]  # the FEES account is cached too
    assert len([s for s in statements if "events_streamhead" in s]) == 1, statements
    assert len([s for s in statements if "wallets_journalevent" in s]) == 1, statements
    assert len(statements) <= 11, statements


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_duplicate_settlement_without_savepoints_is_still_reported_as_a_duplicate(alice, bob, usdt):
    legs = [Leg(account=alice, asset=usdt, bucket="available", amount=D("-1")), Leg(account=bob, asset=usdt, bucket="available", amount=D("1"))]
    ledger_settle(idempotency_key="t:dup", kind=JournalEventKind.TRADE, legs=legs, savepoint=False)
    with pytest.raises(DuplicateLedgerEvent), transaction.atomic():
        ledger_settle(idempotency_key="t:dup", kind=JournalEventKind.TRADE, legs=legs, savepoint=False)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refused_settlement_without_savepoints_rolls_back_with_the_callers_transaction(alice, bob, usdt):
    legs = [Leg(account=alice, asset=usdt, bucket="available", amount=D("-1")), Leg(account=bob, asset=usdt, bucket="available", amount=D("1"))]
    before = JournalEvent.objects.count()
    # Act: the caller's own write, then a refused posting (alice has no 10^9 USDT).
    with pytest.raises(InsufficientFunds), transaction.atomic():
        ledger_settle(idempotency_key="t:ok", kind=JournalEventKind.TRADE, legs=legs, savepoint=False)
        ledger_settle(idempotency_key="t:big", kind=JournalEventKind.TRADE, legs=[
            Leg(account=alice, asset=usdt, bucket="available", amount=D("-1000000000")),
            Leg(account=bob, asset=usdt, bucket="available", amount=D("1000000000")),
        ], savepoint=False)
    # Assert: nothing of the transaction stays — neither event, no half posting.
    assert JournalEvent.objects.count() == before


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.django_db
def test_the_after_batch_hook_runs_at_once_then_at_most_once_per_interval_with_every_trade_counted(engine, market, settings, monkeypatch):
    settings.KK99 = {**settings.KK99, "ENGINE_BATCH_HOOK_INTERVAL_SECONDS": 0.25}
    clock = _Clock()
    monkeypatch.setattr(runner_module.time, "monotonic", clock)
    calls = []

    def receiver(**kwargs):
        calls.append((kwargs["trades"], kwargs["market"].pk))

    batch_committed.connect(receiver, dispatch_uid="test-hook-coalesce")
    try:
        runner = EngineRunner([market.symbol], owner="test")
        runner.engines[market.symbol] = engine
        # Act 1: the first batch with trades — the hook runs at once (leading edge).
        runner._hook_trades[market.symbol] = 2
        runner._run_hooks()
        assert calls == [(2, market.pk)] and runner._hook_wait() is None
        # Act 2: two more batches within the interval — held back, the wait is shortened for them.
        clock.now += 0.1
        runner._hook_trades[market.symbol] = 3
        runner._run_hooks()
        runner._hook_trades[market.symbol] += 4
        runner._run_hooks()
        assert calls == [(2, market.pk)]
        assert runner._hook_wait() == pytest.approx(0.15)
        # Act 3: the interval is over (no further batch needed) — one call with all 7 trades.
        clock.now += 0.15
        runner._run_hooks()
        assert calls == [(2, market.pk), (7, market.pk)] and runner._hook_wait() is None
    finally:
        batch_committed.disconnect(dispatch_uid="test-hook-coalesce")


@pytest.mark.django_db
def test_after_a_partial_batch_one_unlocked_read_tells_whether_anything_is_queued(engine, market, alice, bob):
    from trading.services import order_cancel

    # Nothing known yet (no batch ran): the runner must run a batch.
    assert engine.surely_idle() is False
    # A batch that took one order of up to ENGINE_BATCH_SIZE, nothing queued since: idle.
    resting = place(alice, market, "SELL", quantity="0.01", price="100")
    assert engine.process_batch().commands == 1
    assert engine.surely_idle() is True
    # Asked once per batch: without a new batch the runner runs one (the idle path).
    assert engine.surely_idle() is False
    # An order queued after the batch: not idle.
    engine.process_batch()
    place(bob, market, "BUY", quantity="0.02", price="90")
    engine._partial = True  # as after a partial batch
    assert engine.surely_idle() is False
    engine.run_until_idle()
    # A cancel request queued after the batch: not idle either.
    place(bob, market, "BUY", quantity="0.02", price="80")
    assert engine.process_batch().commands == 1
    order_cancel(user=alice, order=resting)
    assert engine.surely_idle() is False


def _capture_waiter_states(monkeypatch) -> list:
    from trading.engine import publishing

    sent = []
    monkeypatch.setattr(publishing, "orders_done_on_commit", lambda symbol, ids, states=None: sent.append((symbol, list(ids), states)))
    return sent


@pytest.mark.django_db
def test_an_answer_built_from_the_engines_wake_up_equals_the_one_read_from_the_database(engine, market, alice, bob, monkeypatch):
    from trading.binance.formats import Fmt
    from trading.engine.wakeup import _STATE_FIELDS, order_with_engine_state
    from trading.models import Order
    from trading.selectors import order_taker_fills

    place(alice, market, "SELL", quantity="0.3", price="100")
    place(alice, market, "SELL", quantity="0.5", price="101.5")
    engine.run_until_idle()
    buy = place(bob, market, "BUY", quantity="1", price="102")  # two fills, then rests
    pending = Order.objects.select_related("market").get(pk=buy.pk)  # the waiter's first read
    sent = _capture_waiter_states(monkeypatch)
    # Act
    engine.process_batch()
    # Assert: the wake-up carried the buy's state; built from it = read after the commit.
    (_, ids, states), = sent
    assert buy.pk in ids and set(states) == {buy.pk}
    built = order_with_engine_state(pending, states[buy.pk])
    read = Order.objects.select_related("market").get(pk=buy.pk)
    for name in _STATE_FIELDS:
        assert (name, str(getattr(built, name))) == (name, str(getattr(read, name)))
    fmt = Fmt(market)
    from_db_fills = list(Trade.objects.filter(taker_order_id=buy.pk).order_by("trade_id"))
    assert len(order_taker_fills(order=built)) == 2
    assert fmt.order_full(built, order_taker_fills(order=built)) == fmt.order_full(read, from_db_fills)


@pytest.mark.django_db
def test_a_batch_of_more_than_sixteen_changed_orders_wakes_with_ids_only(engine, market, alice, monkeypatch):
    for i in range(17):
        place(alice, market, "BUY", quantity="0.02", price=str(90 + i * D("0.01")))
    sent = _capture_waiter_states(monkeypatch)
    engine.process_batch()
    (_, ids, states), = sent
    assert len(ids) == 17 and states is None


def test_the_dispatcher_hands_each_waiter_its_orders_state_or_none():
    import json

    from trading.engine import wakeup

    d = wakeup._Dispatcher(None, start=False)  # no thread, no Redis
    first, other = d.register(7), d.register(8)
    d._wake(json.dumps({"ids": [7, 8], "s": {"7": ["FILLED"]}}).encode())
    assert first.is_set() and first.state == ["FILLED"]
    assert other.is_set() and other.state is None
    d._wake(b"7")  # a later batch without state: the waiter must re-read
    assert first.state is None
