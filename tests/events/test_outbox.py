"""The outbox is written in the business action's own transaction, with gap-free per-stream
sequences assigned where the order is decided."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal as D

import pytest
from django.db import transaction

from events.models import OutboxEvent
from events.outbox import ONE_STATEMENT_MAX, account_stream, events_append, market_stream
from tests.fixtures import place
from wallets.models import JournalEntry

pytestmark = [pytest.mark.postgres]


def _stream(name):
    return list(OutboxEvent.objects.filter(stream=name).order_by("seq"))


def test_engine_batch_writes_trades_then_orders_to_the_market_stream_in_engine_order(alice, bob, market, engine):
    sell = place(alice, market, "SELL", price="100", quantity="1", time_in_force="GTC")
    buy = place(bob, market, "BUY", price="100", quantity="0.4", time_in_force="GTC")
    engine.run_until_idle()

    events = _stream(market_stream("BTCUSDT"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    types = [e.event_type for e in events]
    trade_events = [e for e in events if e.event_type == "trade.executed"]
    assert len(trade_events) == 1 and trade_events[0].payload["qty"] == "0.4"
    assert trade_events[0].payload["maker_order_id"] == sell.pk and trade_events[0].payload["taker_order_id"] == buy.pk
    # within a batch: trades first, then the orders' final states
    first_order = types.index("order.updated")
    assert all(t == "order.updated" for t in types[first_order:]) or "trade.executed" not in types[first_order:]
    last_state = {e.payload["order_id"]: e.payload["status"] for e in events if e.event_type == "order.updated"}
    assert last_state[buy.pk] == "FILLED" and last_state[sell.pk] == "PARTIALLY_FILLED"


def test_every_balance_change_is_one_event_per_account_and_asset_equal_to_the_journal(alice, bob, market, engine):
    place(alice, market, "SELL", price="100", quantity="1", time_in_force="GTC")
    place(bob, market, "BUY", price="100", quantity="1", time_in_force="GTC")
    engine.run_until_idle()

    want = defaultdict(lambda: [D(0), D(0)])
    for e in JournalEntry.objects.all():
        want[(e.event_id, e.account_id, e.asset_id)][0 if e.bucket == "available" else 1] += e.amount
    got = {}
    per_stream = defaultdict(list)
    for ev in OutboxEvent.objects.filter(event_type="balance.changed").order_by("id"):
        p = ev.payload
        key = (p["journal_event_id"], p["account_id"], p["asset_id"])
        assert key not in got
        got[key] = [D(p["delta_available"]), D(p["delta_locked"])]
        assert ev.stream == account_stream(p["account_id"])
        per_stream[ev.stream].append(ev.seq)
    assert got == {k: v for k, v in want.items() if v != [0, 0]}
    for seqs in per_stream.values():
        assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_action_leaves_no_event_and_no_gap():
    with transaction.atomic():
        events_append([("user.1", "user.updated", {"user_id": 1, "change": "a", "attributes": {}})])
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            events_append([("user.1", "user.updated", {"user_id": 1, "change": "b", "attributes": {}})])
            raise RuntimeError("the business action failed")
    with transaction.atomic():
        events_append([("user.1", "user.updated", {"user_id": 1, "change": "c", "attributes": {}})])
    assert [(e.seq, e.payload["change"]) for e in _stream("user.1")] == [(1, "a"), (2, "c")]


@pytest.mark.django_db(transaction=True)
def test_events_append_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the business action's transaction"):
        events_append([("user.1", "user.updated", {"user_id": 1, "change": "a", "attributes": {}})])
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_event_type_without_a_schema_is_refused_before_anything_is_written():
    with pytest.raises(KeyError, match="no Avro schema"):
        with transaction.atomic():
            events_append([("user.1", "user.renamed", {})])
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize("n", [1, 3, ONE_STATEMENT_MAX, ONE_STATEMENT_MAX + 1, 3 * ONE_STATEMENT_MAX])
def test_one_statement_and_copy_appends_give_the_same_gap_free_interleaved_sequences(db, n):
    # ≤ ONE_STATEMENT_MAX events go in one statement, more by COPY: the same result either way.
    with transaction.atomic():
        events_append([(market_stream("AAAUSDT"), "trade.executed", {"i": -1})])
    events = [(market_stream("AAAUSDT" if i % 3 else "BBBUSDT"), "trade.executed", {"i": i}) for i in range(n)]
    with transaction.atomic():
        given = events_append(events)
    stored = {(e.stream, e.seq): e.payload["i"] for e in OutboxEvent.objects.all()}
    assert [stored[g] for g in given] == list(range(n))
    for stream in {s for s, _ in stored}:
        seqs = sorted(q for s, q in stored if s == stream)
        assert seqs == list(range(1, len(seqs) + 1))
    assert [stored[(market_stream("AAAUSDT"), 1)]] == [-1]
