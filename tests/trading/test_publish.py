"""Commit, then publish: events go out through kk99.publish only after the batch commits."""
from __future__ import annotations

import os
from unittest import mock

import pytest

from kk99.publish import market_group, publish_on_commit, user_group
from tests.fixtures import place

pytestmark = pytest.mark.django_db


def test_group_names():
    assert market_group("btcusdt") == "market.BTCUSDT"
    assert user_group(7) == "user.7"


def test_nothing_is_sent_for_a_rolled_back_transaction(db):
    from django.db import transaction

    with mock.patch("kk99.publish._send") as send:
        try:
            with transaction.atomic():
                publish_on_commit("x.y", {"a": 1}, groups=["g"])
                raise RuntimeError
        except RuntimeError:
            pass
    send.assert_not_called()


def test_an_engine_batch_publishes_trades_depth_orders_and_balances_after_commit(engine, market, alice, bob, django_capture_on_commit_callbacks):
    place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    place(bob, market, "BUY", quantity="1", price="100")
    with mock.patch("kk99.publish._send") as send:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            engine.run_until_idle()
        send.assert_not_called()  # nothing before commit
        for cb in callbacks:
            cb()
    sent = [(c.args[0], tuple(c.args[2])) for c in send.call_args_list]
    kinds = {k for k, _ in sent}
    assert {"trade.batch", "depth.diff", "order.update", "trade.fill", "balance.update"} <= kinds
    trade_batch = next(c.args[1] for c in send.call_args_list if c.args[0] == "trade.batch")
    assert trade_batch["trades"][0]["trade_id"] == 1 and "maker_user_id" not in trade_batch["trades"][0]
    depth = next(c.args[1] for c in send.call_args_list if c.args[0] == "depth.diff")
    assert depth["last_update_id"] == 2 and depth["asks"] == [["100.00", "0.000"]] or depth["asks"][0][1] in ("0", "0.000")
    assert ("order.update", (user_group(bob.pk),)) in sent


def test_background_sender_keeps_commit_order_per_group_and_does_not_block(settings):
    """With a network channel layer the on-commit hook only enqueues; one sender thread sends
    in FIFO order, so a group receives events in the order they were committed."""
    import threading
    import time

    import kk99.publish as publish

    received: list[tuple[str, int]] = []
    gate = threading.Event()

    class SlowLayer:  # stands for Redis: every send takes a while
        async def group_send(self, group, message):
            gate.wait(5)
            received.append((group, message["payload"]["n"]))

    layer = SlowLayer()
    with mock.patch("kk99.publish.get_channel_layer", return_value=layer):
        started = time.monotonic()
        for n in range(50):
            publish._send("x.y", {"n": n}, [f"g{n % 3}"])
        enqueue_seconds = time.monotonic() - started
        gate.set()
        assert publish.publish_flush(timeout=10)
    assert enqueue_seconds < 1.0  # nothing waited for the layer
    for g in ("g0", "g1", "g2"):
        got = [n for group, n in received if group == g]
        assert got == sorted(got) and got
    assert [n for _, n in received] == list(range(50))  # one sender: global FIFO


def test_in_memory_layer_sends_synchronously(settings):
    from channels.layers import InMemoryChannelLayer

    import kk99.publish as publish

    assert not publish._background_wanted(InMemoryChannelLayer())
    settings.KK99 = {**settings.KK99, "PUBLISH_BACKGROUND": False}
    assert not publish._background_wanted(object())


def test_a_public_trade_event_carries_no_user_id_and_a_fill_no_counterparty(engine, market, alice, bob, django_capture_on_commit_callbacks):
    from trading.engine.publishing import PUBLIC_TRADE_FIELDS

    # Arrange: alice rests, bob takes.
    place(alice, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    place(bob, market, "BUY", quantity="1", price="100")
    # Act
    with mock.patch("kk99.publish._send") as send:
        with django_capture_on_commit_callbacks(execute=True):
            engine.run_until_idle()
    # Assert: the market group's trade has exactly the public fields — no user id, no fee, no maker order.
    public = [c for c in send.call_args_list if c.args[0] == "trade.batch"]
    assert public and all(tuple(c.args[2]) == (market_group("BTCUSDT"),) for c in public)
    for c in public:
        for t in c.args[1]["trades"]:
            assert set(t) == set(PUBLIC_TRADE_FIELDS)
            assert not any("user" in k or "fee" in k or k == "maker_order_id" for k in t)
    # Each user's fill names only that user's side.
    fills = {tuple(c.args[2]): c.args[1] for c in send.call_args_list if c.args[0] == "trade.fill"}
    maker_fill = fills[(user_group(alice.pk),)][0]
    taker_fill = fills[(user_group(bob.pk),)][0]
    assert maker_fill["maker_user_id"] == alice.pk and "taker_user_id" not in maker_fill and "taker_fee" not in maker_fill
    assert taker_fill["taker_user_id"] == bob.pk and "maker_user_id" not in taker_fill and "maker_order_id" not in taker_fill


def test_the_engine_order_payload_equals_the_service_payload(engine, market, alice):
    from trading.engine.publishing import _order_payload
    from trading.models import Order
    from trading.services import order_payload

    place(alice, market, "BUY", quantity="1", price="99")
    engine.run_until_idle()
    o = Order.objects.select_related("market").get(user=alice)
    assert _order_payload(o, market.symbol, market.pk, o.updated_at.isoformat()) == order_payload(o)


@pytest.mark.redis
def test_the_background_sender_skips_groups_nobody_listens_to_in_one_round_trip():
    """channels_redis's group_send costs two Redis round trips even for an empty group; the
    sender reads the membership of every group of the drained queue in one pipeline and sends
    only to groups with a live member (an expired member counts as gone, as in group_send)."""
    import asyncio
    import time
    import uuid

    from channels_redis.core import RedisChannelLayer

    import kk99.publish as publish

    layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]], prefix=f"test-{uuid.uuid4().hex[:8]}", group_expiry=60)
    sent: list[str] = []
    real_group_send = layer.group_send

    async def counting_group_send(group, message):
        sent.append(group)
        await real_group_send(group, message)

    async def scenario():
        listener = await layer.new_channel()
        await layer.group_add("user.1", listener)
        stale = await layer.new_channel()  # joined long ago and never refreshed: expired
        await layer.connection(layer.consistent_hash("user.3")).zadd(layer._group_key("user.3"), {stale: time.time() - 120})
        assert await publish.groups_listened(layer, {"user.1", "user.2", "user.3"}) == {"user.1"}
        layer.group_send = counting_group_send
        sender = publish._Sender.__new__(publish._Sender)
        sender.layer = layer
        await sender._send_items([({"type": "order.update", "payload": {"n": 1}}, ["user.1", "user.2"]),
                                  ({"type": "trade.fill", "payload": {"n": 2}}, ["user.2", "user.3"])])
        got = await asyncio.wait_for(layer.receive(listener), 2)
        await layer.flush()
        return got

    got = asyncio.run(scenario())
    assert sent == ["user.1"]
    assert got == {"type": "order.update", "payload": {"n": 1}}


def test_group_membership_is_not_read_from_a_layer_that_is_not_channels_redis():
    import asyncio

    import kk99.publish as publish

    class OtherLayer:
        pass

    assert asyncio.run(publish.groups_listened(OtherLayer(), {"user.1"})) is None
