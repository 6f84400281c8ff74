"""An order the engine cannot process is quarantined; the market goes on."""
from __future__ import annotations

from decimal import Decimal as D
from unittest import mock

import pytest

from tests.fixtures import assert_holds_match_open_orders, bal, fresh, place
from trading.engine.core import MarketEngine
from trading.models import Order, Trade

S = Order.Status
pytestmark = pytest.mark.django_db


def _drain(engine, rounds: int = 20) -> list[Exception]:
    """What the runner does: run batches, log-and-continue on errors."""
    errors = []
    for _ in range(rounds):
        try:
            if not engine.process_batch().commands:
                break
        except Exception as exc:
            errors.append(exc)
    return errors


def test_a_poison_order_is_rejected_with_its_hold_released_and_the_others_trade(engine, market, alice, bob, usdt, btc):
    sell = place(alice, market, "SELL", quantity="1", price="100")
    poison = place(bob, market, "BUY", quantity="2", price="99")
    buy = place(bob, market, "BUY", quantity="1", price="100")
    real_submit = MarketEngine._submit

    def submit(self, b, o):
        if o.pk == poison.pk:
            raise ZeroDivisionError("bug while matching")
        return real_submit(self, b, o)

    with mock.patch.object(MarketEngine, "_submit", submit):
        errors = _drain(engine)

    assert len(errors) == 1  # the first batch failed; then one by one, and the poison was quarantined
    assert fresh(poison).status == S.REJECTED and fresh(poison).reject_reason == "engine_error:ZeroDivisionError"
    assert fresh(poison).held_remaining == 0
    assert fresh(sell).status == S.FILLED and fresh(buy).status == S.FILLED
    assert Trade.objects.count() == 1
    assert_holds_match_open_orders()
    assert bal(bob, usdt)[1] == D(0)
    # and the market keeps working afterwards
    later = place(alice, market, "SELL", quantity="1", price="101")
    assert not _drain(engine)
    assert fresh(later).status == S.NEW


def test_a_transient_failure_quarantines_nothing(engine, market, alice, bob):
    sell = place(alice, market, "SELL", quantity="1", price="100")
    buy = place(bob, market, "BUY", quantity="1", price="100")
    calls = {"n": 0}
    real_submit = MarketEngine._submit

    def flaky(self, b, o):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("once")
        return real_submit(self, b, o)

    with mock.patch.object(MarketEngine, "_submit", flaky):
        errors = _drain(engine)
    assert len(errors) == 1
    assert fresh(sell).status == S.FILLED and fresh(buy).status == S.FILLED
    assert not Order.objects.filter(status=S.REJECTED).exists()


def test_a_systematic_failure_stops_quarantining(engine, market, alice, settings):
    settings.KK99 = {**settings.KK99, "ENGINE_QUARANTINE_MAX_IN_A_ROW": 2}
    orders = [place(alice, market, "SELL", quantity="1", price=str(100 + i)) for i in range(5)]
    with mock.patch.object(MarketEngine, "_submit", side_effect=RuntimeError("always")):
        errors = _drain(engine, rounds=10)
    rejected = [o for o in orders if fresh(o).status == S.REJECTED]
    assert len(rejected) == 2  # then the engine keeps failing (and raising) instead of rejecting everything
    assert len(errors) >= 2
    assert_holds_match_open_orders()
