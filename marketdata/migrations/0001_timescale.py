"""TimescaleDB mode: with ``KK99_TIMESCALEDB=1`` at migrate time, create the trades
hypertable copy, its trigger, the candle continuous aggregates and the policies
(marketdata/timescale.py). With the mode off it does nothing, on any database; switching the
mode on later is ``manage.py timescale_setup`` (the same idempotent function).

Not atomic: continuous aggregates cannot be created or refreshed inside a transaction block
(the trigger and its backfill still share one transaction, see timescale_setup)."""
from django.db import migrations

from marketdata.timescale import timescale_enabled, timescale_setup


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql" and timescale_enabled():
        timescale_setup(schema_editor.connection)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("trading", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False),
    ]
