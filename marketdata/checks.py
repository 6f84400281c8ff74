"""System checks of the market-data app: TimescaleDB mode switched on but not set up."""
from __future__ import annotations

from django.core.checks import Warning as CheckWarning
from django.db import connections

from marketdata.timescale import timescale_enabled, timescale_ready


def check_timescale_setup(app_configs=None, databases=None, **kwargs):
    """A database check (runs with ``check --database default`` and before ``migrate``): a
    warning, not an error, because the first ``migrate`` is what creates the objects."""
    if not databases or "default" not in databases or not timescale_enabled():
        return []
    connection = connections["default"]
    if connection.vendor != "postgresql" or timescale_ready(connection):
        return []
    return [CheckWarning(
        "KK99_TIMESCALEDB=1 but the trades hypertable copy or the candle aggregates are missing; candles are read from trading_trade.",
        hint="Run `python manage.py migrate` (or `python manage.py timescale_setup` if the migration ran with the mode off).",
        id="marketdata.W001",
    )]
