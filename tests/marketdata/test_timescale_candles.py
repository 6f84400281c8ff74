"""Candles on a REAL TimescaleDB (PGlite's TimescaleDB 2.23 build over the wire protocol,
installed by deploy/scripts/install-timescale.sh from ``make test-tools``): trades in a
hypertable, ``time_bucket`` and ``date_bin`` give identical candles for every interval, and
both equal Python's bucketing (the SQLite path's rule). These tests never skip: without the
tool they fail and say how to install it."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from marketdata.intervals import INTERVALS
from marketdata.selectors import candle_aggregate_sql

UTC = dt.UTC


@pytest.fixture(scope="module")
def trades(timescale):
    """~600 trades of two markets over ~40 days with quiet gaps, in a hypertable."""
    timescale.execute("""
        CREATE TABLE ts_trade (market_id bigint NOT NULL, trade_id bigint NOT NULL, price numeric(38, 18) NOT NULL,
            qty numeric(38, 18) NOT NULL, quote_qty numeric(38, 18) NOT NULL, is_buyer_maker boolean NOT NULL,
            created_at timestamptz NOT NULL)
    """)
    timescale.execute("SELECT create_hypertable('ts_trade', 'created_at', chunk_time_interval => interval '7 days')")
    rng = random.Random(16)
    t = dt.datetime(2026, 1, 28, 23, 57, 13, 250000, tzinfo=UTC)
    rows = []
    for i in range(1, 601):
        t += dt.timedelta(seconds=rng.choice([0.2, 3, 45, 700, 4000, 90000]))
        price = Decimal(rng.randint(9000, 11000)) / 100
        qty = Decimal(rng.randint(1, 5000)) / 1000
        rows.append((1 + i % 2, i, price, qty, price * qty, rng.random() < 0.5, t))
    for row in rows:  # one statement at a time: pglite-socket does not take psycopg's pipeline (executemany)
        timescale.execute("INSERT INTO ts_trade VALUES (%s, %s, %s, %s, %s, %s, %s)", row)
    assert timescale.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'ts_trade'").fetchone()[0] > 1
    return rows


def _candles(conn, interval, *, timescale: bool, market_id: int, start, end):
    sql, params = candle_aggregate_sql(interval, table="ts_trade", timescale=timescale)
    rows = conn.execute(sql, [*params, market_id, start, end]).fetchall()
    return {r[0].astimezone(UTC): tuple(r[1:]) for r in rows}


def _python_buckets(rows, interval, market_id):
    out = {}
    for m, _tid, _p, _q, _qq, _bm, t in rows:
        if m != market_id:
            continue
        key = interval.floor(t) if not interval.is_month else t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        out[key] = out.get(key, 0) + 1
    return out


@pytest.mark.parametrize("name", sorted(INTERVALS))
def test_timescale_time_bucket_candles_equal_date_bin_candles_on_a_hypertable(timescale, trades, name):
    interval = INTERVALS[name]
    start, end = dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 12, 31, tzinfo=UTC)
    for market_id in (1, 2):
        bucketed = _candles(timescale, interval, timescale=True, market_id=market_id, start=start, end=end)
        binned = _candles(timescale, interval, timescale=False, market_id=market_id, start=start, end=end)
        assert bucketed == binned
        assert {k: v[6] for k, v in bucketed.items()} == _python_buckets(trades, interval, market_id)


def test_timescale_extension_is_really_timescaledb(timescale):
    version = timescale.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0]
    assert version.startswith("2.")
    assert timescale.execute("SELECT time_bucket('1 hour'::interval, '2026-01-01 10:42:00+00'::timestamptz)").fetchone()[0] == dt.datetime(2026, 1, 1, 10, tzinfo=UTC)
