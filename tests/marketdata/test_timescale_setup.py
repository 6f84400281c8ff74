"""TimescaleDB mode on a REAL TimescaleDB (PGlite's 2.23 build, tests/marketdata/conftest.py):
``timescale_setup`` turns a trades table into a hypertable copy fed by a trigger, builds the
1m/1h/1d continuous aggregates and the policies, and the candles read from the aggregates
equal the candles computed from ``trading_trade`` (the plain-PostgreSQL query) for every
interval — before and after new trades, compression and retention."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from marketdata.intervals import INTERVALS
from marketdata.selectors import candle_aggregate_sql, candle_rollup_sql
from marketdata.timescale import CANDLE_VIEWS, TRADE_TS_TABLE, candle_view_for, timescale_ready, timescale_setup

UTC = dt.UTC
NOW = dt.datetime.now(UTC)
START = NOW - dt.timedelta(days=200)


def _trades(rng: random.Random, first_id: dict[int, int], start: dt.datetime, n: int, *, gaps=(0.2, 3, 45, 700, 4000, 40000)):
    t, rows = start, []
    for _ in range(n):
        t += dt.timedelta(seconds=rng.choice(gaps))
        market = rng.choice((1, 2))
        first_id[market] += 1
        price = Decimal(rng.randint(9000, 11000)) / 100
        qty = Decimal(rng.randint(1, 5000)) / 1000
        rows.append((market, first_id[market], t, price, qty, price * qty, rng.random() < 0.5))
    return rows


def _insert(conn, rows, *, per_statement: int = 25) -> None:
    # Multi-row statements (the engine's bulk insert fires the statement trigger once for many
    # rows); pglite-socket does not take psycopg's pipelined executemany.
    for i in range(0, len(rows), per_statement):
        chunk = rows[i:i + per_statement]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
        conn.execute(f"INSERT INTO trading_trade (market_id, trade_id, created_at, price, qty, quote_qty, is_buyer_maker) VALUES {values}",
                     [v for row in chunk for v in row])


def _raw(conn, interval, market_id, start, end):
    sql, params = candle_aggregate_sql(interval, table="trading_trade", timescale=False)
    return {r[0].astimezone(UTC): tuple(r[1:]) for r in conn.execute(sql, [*params, market_id, start, end]).fetchall()}


def _rolled_up(conn, interval, market_id, start, end):
    sql, params = candle_rollup_sql(interval)
    return {r[0].astimezone(UTC): tuple(r[1:]) for r in conn.execute(sql, [*params, market_id, start, end]).fetchall()}


def _assert_every_interval_equal(conn, start=START, end=NOW + dt.timedelta(days=40)):
    for name, interval in sorted(INTERVALS.items()):
        lo, hi = (interval.floor(start), interval.floor(end)) if not interval.is_month else (
            start.replace(day=1, hour=0, minute=0, second=0, microsecond=0), end)
        for market_id in (1, 2):
            raw = _raw(conn, interval, market_id, lo, hi)
            assert raw, name
            assert _rolled_up(conn, interval, market_id, lo, hi) == raw, f"{name} market {market_id}"


def _job(conn, proc: str, table: str) -> int:
    return conn.execute(
        "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s AND hypertable_name = %s", [proc, table]
    ).fetchone()[0]


@pytest.fixture(scope="module")
def ts(timescale):
    """trading_trade as the engine has it (id primary key, unique (market, trade_id)) with
    history from before the mode was switched on, then ``timescale_setup``."""
    timescale.execute("""
        CREATE TABLE trading_trade (
            id bigserial PRIMARY KEY, market_id bigint NOT NULL, trade_id bigint NOT NULL, created_at timestamptz NOT NULL,
            price numeric(38, 18) NOT NULL, qty numeric(38, 18) NOT NULL, quote_qty numeric(38, 18) NOT NULL,
            is_buyer_maker boolean NOT NULL, CONSTRAINT trade_id_unique_per_market UNIQUE (market_id, trade_id))
    """)
    rng = random.Random(1615)
    ids = {1: 0, 2: 0}
    # History from before the switch: ~200 and ~30 days ago (old enough for compression and,
    # partly, for the 90-day retention of the copy).
    _insert(timescale, _trades(rng, ids, START, 150))
    _insert(timescale, _trades(rng, ids, NOW - dt.timedelta(days=30), 150, gaps=(0.2, 3, 45, 700, 4000)))
    ran = timescale_setup(timescale)
    return {"conn": timescale, "rng": rng, "ids": ids, "ran": ran}


def test_timescale_setup_makes_a_hypertable_copy_with_the_history_and_leaves_trading_trade_alone(ts):
    conn = ts["conn"]
    assert timescale_ready(conn)
    assert conn.execute("SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = %s", [TRADE_TS_TABLE]).fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'trading_trade'").fetchone()[0] == 0
    # The backfill copied every trade, exactly.
    assert conn.execute(f"SELECT count(*) FROM {TRADE_TS_TABLE}").fetchone()[0] == 300
    assert conn.execute(
        f"SELECT count(*) FROM trading_trade t FULL JOIN {TRADE_TS_TABLE} c USING (market_id, trade_id, created_at) "
        "WHERE t.id IS NULL OR c.trade_id IS NULL OR t.price <> c.price OR t.qty <> c.qty"
    ).fetchone()[0] == 0
    # trading_trade keeps its primary key and the per-market trade-id guard.
    with pytest.raises(Exception, match="trade_id_unique_per_market"):
        conn.execute("INSERT INTO trading_trade (market_id, trade_id, created_at, price, qty, quote_qty, is_buyer_maker) "
                     "VALUES (1, 1, now(), 1, 1, 1, true)")
    assert conn.execute(f"SELECT count(*) FROM {TRADE_TS_TABLE}").fetchone()[0] == 300  # the refused insert left no copy
    views = {r[0] for r in conn.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates").fetchall()}
    assert views == {v.name for v in CANDLE_VIEWS}
    jobs = {r[0] for r in conn.execute("SELECT proc_name FROM timescaledb_information.jobs WHERE job_id >= 1000").fetchall()}
    assert jobs == {"policy_compression", "policy_refresh_continuous_aggregate", "policy_retention"}


def test_timescale_candles_from_the_aggregates_equal_the_trades_for_every_interval(ts):
    _assert_every_interval_equal(ts["conn"])


def test_timescale_new_trades_reach_the_copy_by_trigger_and_real_time_candles_include_them(ts):
    conn = ts["conn"]
    before = conn.execute(f"SELECT count(*) FROM {TRADE_TS_TABLE}").fetchone()[0]
    # Trades the engine commits from now on (timestamps after the setup's refresh).
    _insert(conn, _trades(ts["rng"], ts["ids"], NOW + dt.timedelta(seconds=5), 300, gaps=(0.5, 20, 300, 3000, 30000)))
    assert conn.execute(f"SELECT count(*) FROM {TRADE_TS_TABLE}").fetchone()[0] == before + 300
    # Nothing refreshed the aggregates since: the new buckets come from real-time aggregation.
    _assert_every_interval_equal(conn)


def test_timescale_a_trade_committed_into_a_materialised_minute_shows_after_the_policy_refresh(ts):
    conn = ts["conn"]

    def policies():  # what the background workers do every minute / 10 minutes / hour
        for view in CANDLE_VIEWS:
            conn.execute(f"CALL run_job({_job(conn, 'policy_refresh_continuous_aggregate', view.name)})")

    # A trade 10 minutes ago, materialised by the 1m policy: the view's watermark passes it.
    ts["ids"][1] += 1
    _insert(conn, [(1, ts["ids"][1], NOW - dt.timedelta(minutes=10), Decimal("101.5"), Decimal("1"), Decimal("101.5"), True)])
    policies()
    # A batch that committed late, into a minute below the watermark: stale until the next
    # refresh (the invalidation log records it), then correct.
    ts["ids"][1] += 1
    late = NOW - dt.timedelta(minutes=30)
    _insert(conn, [(1, ts["ids"][1], late, Decimal("12345.67"), Decimal("0.5"), Decimal("6172.835"), False)])
    minute = INTERVALS["1m"].floor(late)
    window = (minute, minute + dt.timedelta(minutes=1))
    assert _rolled_up(conn, INTERVALS["1m"], 1, *window) != _raw(conn, INTERVALS["1m"], 1, *window)
    policies()
    _assert_every_interval_equal(conn)


def test_timescale_setup_twice_changes_nothing(ts):
    conn = ts["conn"]
    count = conn.execute(f"SELECT count(*) FROM {TRADE_TS_TABLE}").fetchone()[0]
    timescale_setup(conn)
    assert conn.execute(f"SELECT count(*) FROM {TRADE_TS_TABLE}").fetchone()[0] == count
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'marketdata_trade_ts_copy'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM timescaledb_information.jobs WHERE job_id >= 1000").fetchone()[0] == 2 + len(CANDLE_VIEWS)
    _assert_every_interval_equal(conn)


def test_timescale_compression_and_retention_policies_keep_every_candle(ts):
    conn = ts["conn"]
    for view in CANDLE_VIEWS:  # what the refresh policies do over time (no background workers in PGlite)
        conn.execute(f"CALL refresh_continuous_aggregate('{view.name}', NULL, NULL)")
    conn.execute(f"CALL run_job({_job(conn, 'policy_compression', TRADE_TS_TABLE)})")
    compressed = conn.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = %s AND is_compressed", [TRADE_TS_TABLE]).fetchone()[0]
    assert compressed > 0
    _assert_every_interval_equal(conn)

    conn.execute(f"CALL run_job({_job(conn, 'policy_retention', TRADE_TS_TABLE)})")
    oldest_copy = conn.execute(f"SELECT min(created_at) FROM {TRADE_TS_TABLE}").fetchone()[0]
    assert oldest_copy > NOW - dt.timedelta(days=91)  # raw rows older than 90 days were dropped from the copy …
    assert conn.execute("SELECT min(created_at) FROM trading_trade").fetchone()[0] < NOW - dt.timedelta(days=140)  # … never from trading_trade
    _assert_every_interval_equal(conn)  # … and the aggregates still hold their candles
    timescale_setup(conn)  # re-running the setup after retention must not wipe them either
    _assert_every_interval_equal(conn)


@pytest.mark.parametrize(("seconds", "view"), [
    (60, "marketdata_candle_1m"), (180, "marketdata_candle_1m"), (1800, "marketdata_candle_1m"),
    (3600, "marketdata_candle_1h"), (43200, "marketdata_candle_1h"),
    (86400, "marketdata_candle_1d"), (3 * 86400, "marketdata_candle_1d"), (7 * 86400, "marketdata_candle_1d"), (0, "marketdata_candle_1d"),
])
def test_each_interval_reads_the_coarsest_aggregate_that_nests_in_it(seconds, view):
    assert candle_view_for(seconds).name == view
