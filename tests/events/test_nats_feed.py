"""End to end on the machine's NATS JetStream (own streams under a per-test prefix): the engine
and the ledger write events, the relay publishes them, ``events_verify`` checks them."""
from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from events.models import RelayCursor
from events.relay import relay_run
from events.transport import Message, NatsTransport, subject_for
from events.verify import read_stream_messages, verify
from tests.fixtures import place

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def js(nats_prefix):
    t = NatsTransport(prefix=nats_prefix)
    t.open()
    t.ensure_streams()
    yield t
    t.close()


def _trade(alice, bob, market, engine, n=3):
    for _ in range(n):
        place(alice, market, "SELL", price="100", quantity="0.5", time_in_force="GTC")
        place(bob, market, "BUY", price="100", quantity="0.5", time_in_force="GTC")
        engine.run_until_idle()


def _verify(*args):
    out = io.StringIO()
    try:
        call_command("events_verify", *args, stdout=out)
    finally:
        print(out.getvalue())
    return out.getvalue()


def test_relayed_feed_verifies_against_the_database(alice, bob, market, engine, js, nats_prefix):
    _trade(alice, bob, market, engine)
    relayed = relay_run(js, stop_when_idle=True)
    assert relayed > 0
    out = _verify()
    assert "lost 0, duplicated 0, reordered 0" in out and out.strip().endswith("OK")


def test_a_relay_restarted_from_an_old_cursor_publishes_no_copies(alice, bob, market, engine, js):
    _trade(alice, bob, market, engine)
    relay_run(js, stop_when_idle=True)
    RelayCursor.objects.filter(name="default").update(txid=0, event_id=0)  # "crashed before saving the cursor"
    relay_run(js, stop_when_idle=True)
    assert "duplicated 0" in _verify()


def test_verify_fails_and_names_a_duplicate_and_a_lost_event(alice, bob, market, engine, js, nats_prefix):
    _trade(alice, bob, market, engine, n=1)
    relay_run(js, stop_when_idle=True)
    messages = read_stream_messages(url="nats://127.0.0.1:4222", prefix=nats_prefix)
    subject, data = messages[0]
    js.publish([Message(subject=subject, data=data, msg_id="not-a-dedup-key")])  # a copy under another id
    place(alice, market, "SELL", price="101", quantity="0.5", time_in_force="GTC")
    engine.run_until_idle()  # committed, never relayed
    with pytest.raises(CommandError):
        _verify()
    report = verify(read_stream_messages(url="nats://127.0.0.1:4222", prefix=nats_prefix), prefix=nats_prefix)
    assert len(report.duplicated) == 1 and report.lost
    assert subject == subject_for(report.duplicated[0][0], nats_prefix)


def test_the_consumer_example_reads_the_market_stream_in_order(alice, bob, market, engine, js, nats_prefix):
    import asyncio

    from events.consumer_example import consume
    from events.models import OutboxEvent

    _trade(alice, bob, market, engine, n=2)
    relay_run(js, stop_when_idle=True)
    n = OutboxEvent.objects.filter(stream="market.BTCUSDT").count()
    last = asyncio.run(consume("market", url="nats://127.0.0.1:4222", prefix=nats_prefix, limit=n))
    assert last == {"market.BTCUSDT": n}
