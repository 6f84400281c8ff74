"""TimescaleDB mode end to end through Django on a REAL TimescaleDB (PGlite's 2.23 build):
``manage.py migrate`` with ``KK99_TIMESCALEDB=1`` builds the hypertable copy, the candle
aggregates and the policies (migration ``marketdata.0001_timescale``); trades written through
the ORM reach the copy; ``candles_for_market`` reads the aggregates and returns exactly the
candles the plain-PostgreSQL path computes from ``trading_trade``, for every interval."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.marketdata.conftest import timescale_server

ROOT = Path(__file__).resolve().parents[2]

# Runs inside `manage.py shell` against the TimescaleDB (Django's own connection, no pool; one
# process for migrate and the rest: the PGlite server takes one connection at a time).
SCRIPT = r"""
import datetime as dt, json, random
from decimal import Decimal
from django.conf import settings
from django.core.management import call_command
call_command("migrate", interactive=False)
from django.db import connection
from marketdata import selectors
from marketdata.intervals import INTERVALS
from marketdata.timescale import CANDLE_VIEWS, TRADE_TS_TABLE, timescale_ready
from tests.api.factories import make_market, write_trade
from trading.models import Trade

from django.contrib.auth import get_user_model
# bulk_create: no post_save, so no user.updated outbox event — the outbox writes with COPY FROM
# STDIN, which pglite-socket does not carry (docs/marketdata.md: what PGlite could not verify).
get_user_model().objects.bulk_create([get_user_model()(email="tape@example.com")])
market = make_market()
rng = random.Random(16)
now = dt.datetime.now(dt.UTC)
t = now - dt.timedelta(days=12)
def batch(n, gaps):
    global t
    for _ in range(n):
        t += dt.timedelta(seconds=rng.choice(gaps))
        write_trade(market, price=Decimal(rng.randint(9000, 11000)) / 100, qty=Decimal(rng.randint(1, 5000)) / 1000, at=t, buyer_maker=rng.random() < 0.5)
batch(120, (0.5, 30, 400, 3000, 20000))
with connection.cursor() as cursor:  # what the refresh policies do in the background
    for view in CANDLE_VIEWS:
        cursor.execute(f"CALL refresh_continuous_aggregate('{view.name}', NULL, now() - interval '{view.end_offset}')")
# A bulk insert like the engine's batch (one statement, many rows: one trigger call).
last = Trade.objects.filter(market=market).order_by("-trade_id").first()
Trade.objects.bulk_create([
    Trade(market=market, trade_id=last.trade_id + i, engine_seq=last.trade_id + i, price=Decimal("99.5") + i, qty=Decimal("0.25"),
          quote_qty=(Decimal("99.5") + i) * Decimal("0.25"), maker_order=last.maker_order, maker_user=last.maker_user,
          taker_order=last.taker_order, taker_user=last.taker_user, is_buyer_maker=bool(i % 2), maker_fee_asset=market.quote,
          taker_fee_asset=market.quote, created_at=now - dt.timedelta(minutes=5) + dt.timedelta(seconds=i))
    for i in range(1, 11)
])
t = now - dt.timedelta(minutes=4)
batch(30, (0.5, 3))

with connection.cursor() as cursor:
    cursor.execute(f"SELECT count(*) FROM {TRADE_TS_TABLE}")
    copied = cursor.fetchone()[0]
result = {"ready": timescale_ready(connection), "aggregates_used": selectors.timescale_candles(), "copied": copied,
          "trades": Trade.objects.count(), "mismatches": [], "candles": 0}
for name, interval in sorted(INTERVALS.items()):
    kwargs = dict(market=market, interval=interval, limit=1000, now=now + dt.timedelta(minutes=1))
    settings.KK99["TIMESCALEDB"]["ENABLED"] = True
    from_aggregates = selectors.candles_for_market(**kwargs)
    settings.KK99["TIMESCALEDB"]["ENABLED"] = False
    from_trades = selectors.candles_for_market(**kwargs)
    result["candles"] += len(from_aggregates)
    if from_aggregates != from_trades or not from_trades:
        result["mismatches"].append(name)
print("RESULT " + json.dumps(result))
"""


@pytest.mark.slow
def test_timescale_migrate_builds_the_mode_and_django_candles_read_the_aggregates(tmp_path):
    with timescale_server() as port:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.pop("REDIS_URL", None)
        env.update({
            "DATABASE_URL": f"postgres://postgres:postgres@127.0.0.1:{port}/postgres?sslmode=disable",
            "DB_POOL": "0", "KK99_TIMESCALEDB": "1", "DJANGO_SETTINGS_MODULE": "kk99.settings.test", "KK99_VAR_DIR": str(tmp_path),
        })
        shell = subprocess.run([sys.executable, "manage.py", "shell", "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert shell.returncode == 0, shell.stdout[-3000:] + shell.stderr[-3000:]
        assert "Applying marketdata.0001_timescale... OK" in shell.stdout
    result = json.loads(next(line for line in shell.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["ready"] and result["aggregates_used"]
    assert result["copied"] == result["trades"] == 160
    assert result["mismatches"] == [] and result["candles"] > 100
