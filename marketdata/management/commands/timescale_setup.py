"""``manage.py timescale_setup``: create (or complete) the TimescaleDB objects — the trades
hypertable copy and its trigger, the 1m/1h/1d candle aggregates, compression and retention
policies (marketdata/timescale.py). Idempotent; the migration ``marketdata.0001_timescale``
runs the same function when ``KK99_TIMESCALEDB=1`` at migrate time."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from marketdata.timescale import TimescaleMissing, timescale_enabled, timescale_setup


class Command(BaseCommand):
    help = "Create the TimescaleDB hypertable copy of the trades, candle aggregates and policies (KK99_TIMESCALEDB=1)."

    def handle(self, *args, **options):
        if not timescale_enabled():
            raise CommandError("KK99_TIMESCALEDB is off: set KK99_TIMESCALEDB=1 (candles would not read the aggregates)")
        if connection.vendor != "postgresql":
            raise CommandError("TimescaleDB mode needs PostgreSQL")
        try:
            ran = timescale_setup(connection)
        except TimescaleMissing as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"timescale_setup: {len(ran)} statements; candles now read the continuous aggregates")
