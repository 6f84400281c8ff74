"""``KK99_TIMESCALEDB`` on the suite's plain PostgreSQL (no extension): off by default and then
nothing changes; on without a TimescaleDB server, the setup refuses with a clear message, the
database check warns, and candles are still served (from the trades)."""
from __future__ import annotations

import datetime as dt
from copy import deepcopy

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from marketdata import selectors
from marketdata.checks import check_timescale_setup
from marketdata.intervals import INTERVALS
from marketdata.timescale import TimescaleMissing, timescale_ready, timescale_setup
from tests.api.factories import make_market, write_trade

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def timescale_on(settings):
    kk99 = deepcopy(settings.KK99)
    kk99["TIMESCALEDB"]["ENABLED"] = True
    settings.KK99 = kk99
    selectors._timescale_candles_ready.cache_clear()
    yield
    selectors._timescale_candles_ready.cache_clear()


def test_mode_off_by_default_creates_nothing_and_reads_the_trades():
    assert selectors.timescale_candles() is False
    assert not timescale_ready(connection)
    assert check_timescale_setup(databases=["default"]) == []


def test_mode_on_without_the_extension_refuses_the_setup_and_changes_nothing(timescale_on):
    with pytest.raises(TimescaleMissing, match="no timescaledb extension"):
        timescale_setup(connection)
    with pytest.raises(CommandError, match="no timescaledb extension"):
        call_command("timescale_setup")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'marketdata_trade_ts_copy'")
        assert cursor.fetchone()[0] == 0


def test_setup_command_refuses_when_the_mode_is_off():
    with pytest.raises(CommandError, match="KK99_TIMESCALEDB is off"):
        call_command("timescale_setup")


def test_mode_on_but_not_set_up_warns_and_still_serves_candles_from_the_trades(timescale_on):
    (warning,) = check_timescale_setup(databases=["default"])
    assert warning.id == "marketdata.W001"
    market = make_market()
    write_trade(market, price="100", qty="1", at=T0 + dt.timedelta(seconds=5))
    write_trade(market, price="101", qty="2", at=T0 + dt.timedelta(seconds=50))
    assert selectors.timescale_candles() is False
    (candle,) = selectors.candles_for_market(market=market, interval=INTERVALS["1m"], start=T0, end=T0, now=T0 + dt.timedelta(hours=1))
    assert (candle.open, candle.close, candle.trades) == (100, 101, 2)
