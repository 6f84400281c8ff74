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
