"""Commit, then publish: events go out through kk99.publish only after the batch commits."""
from __future__ import annotations

from unittest import mock

import pytest

from kk99.publish import market_group, publish_on_commit, user_group
from tests.trading.conftest import place

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
