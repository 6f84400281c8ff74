"""The runner loop in process (SQLite polling or PostgreSQL LISTEN) and the command wiring."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.fixtures import fresh, place
from trading.engine.runner import EngineRunner
from trading.models import EngineState, Order

pytestmark = pytest.mark.django_db


def test_runner_takes_the_market_processes_work_and_stops(market, alice, settings):
    settings.KK99 = {**settings.KK99, "ENGINE_IDLE_WAIT_SECONDS": 0.05, "ENGINE_SQLITE_POLL_SECONDS": 0.01}
    o = place(alice, market, "BUY", quantity="1", price="100")
    runner = EngineRunner(["BTCUSDT"], owner="in-process")
    assert runner.run(max_seconds=0.5) == 0
    assert fresh(o).status == Order.Status.NEW
    state = EngineState.objects.get(market=market)
    assert (state.owner, state.epoch) == ("in-process", 1)


def test_seed_markets_is_idempotent(db):
    from django.core.management import call_command

    from trading.models import Market

    call_command("seed_markets")
    call_command("seed_markets")
    assert set(Market.objects.values_list("symbol", flat=True)) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "TRXUSDT", "KK99USDT", "AAPLUSD"}
    aapl = Market.objects.get(symbol="AAPLUSD")
    assert aapl.asset_class == Market.AssetClass.EQUITY and aapl.session_timezone == "America/New_York"
    assert EngineState.objects.count() == 6


def test_market_validate_refuses_increments_the_ledger_cannot_represent(btc, usdt):
    from django.core.exceptions import ValidationError

    from trading.markets import market_validate
    from trading.models import Market

    usdt.precision = 2
    m = Market(symbol="X", base=btc, quote=usdt, tick_size=D("0.01"), step_size=D("0.001"), min_qty=D("0.001"), max_qty=D("1"))
    with pytest.raises(ValidationError):
        market_validate(market=m)
