"""TimescaleDB mode (``KK99_TIMESCALEDB=1``): a hypertable copy of the trades, continuous
aggregates for 1m/1h/1d candles, compression and retention policies. Docs: docs/marketdata.md,
"TimescaleDB mode".

Why a copy and not ``trading_trade`` itself: a hypertable's primary key and every unique
index must contain its time column. ``trading_trade`` would lose its ``id`` primary key and,
worse, the ``(market, trade_id)`` uniqueness that guards the engine's gap-free trade ids
(exactly-once settlement) would become ``(market, trade_id, created_at)`` — a replayed batch
with a new timestamp would no longer be refused. So ``trading_trade`` stays a plain table
(the ledger's evidence, never compressed or dropped) and ``marketdata_trade_ts`` is a
hypertable filled by a statement-level ``AFTER INSERT`` trigger on ``trading_trade``: in the
engine's own batch transaction, so a trade is in the copy exactly when it is committed (no
relay, nothing lost or doubled on kill -9), and its primary key ``(market_id, trade_id,
created_at)`` holds because ``(market, trade_id)`` is unique upstream.

Everything here is idempotent (``IF NOT EXISTS``, ``if_not_exists``): :func:`timescale_setup`
runs from the migration ``marketdata.0001_timescale`` when the setting is on, and from
``manage.py timescale_setup`` when the mode is switched on later. It needs a connection in
autocommit (continuous aggregates cannot be created or refreshed in a transaction block).
"""
from __future__ import annotations

from dataclasses import dataclass

from kk99.conf import kk99_setting

TRADE_TABLE = "trading_trade"
TRADE_TS_TABLE = "marketdata_trade_ts"
COPY_TRIGGER = "marketdata_trade_ts_copy"


@dataclass(frozen=True, slots=True)
class CandleView:
    """One continuous aggregate: its name, bucket width, source and refresh policy."""

    name: str
    seconds: int
    source: str  # the hypertable or the finer view it rolls up (hierarchical aggregate)
    start_offset: str  # refresh policy window: re-materialise buckets this far back …
    end_offset: str  # … up to this close to now (newer buckets come from real-time aggregation)
    schedule: str


CANDLE_VIEWS = (
    CandleView("marketdata_candle_1m", 60, TRADE_TS_TABLE, "2 hours", "1 minute", "1 minute"),
    CandleView("marketdata_candle_1h", 3600, "marketdata_candle_1m", "1 day", "1 hour", "10 minutes"),
    CandleView("marketdata_candle_1d", 86400, "marketdata_candle_1h", "7 days", "1 day", "1 hour"),
)


def timescale_settings() -> dict:
    return kk99_setting("TIMESCALEDB")


def timescale_enabled() -> bool:
    return bool(timescale_settings()["ENABLED"])


def candle_view_for(seconds: int) -> CandleView:
    """The coarsest aggregate whose buckets nest exactly in an interval of ``seconds``
    (0 = calendar month). Every Binance boundary (epoch-aligned fixed intervals, Monday weeks,
    month starts) is a UTC day/hour/minute boundary, so rolling these buckets up is exact."""
    for view in reversed(CANDLE_VIEWS):
        if seconds == 0 and view.seconds == 86400:
            return view
        if seconds and seconds % view.seconds == 0:
            return view
    raise ValueError(f"no candle aggregate nests in {seconds} s")


# --- DDL ---------------------------------------------------------------------------------------

COPY_TABLE_SQL = f"""
    CREATE TABLE IF NOT EXISTS {TRADE_TS_TABLE} (
        market_id bigint NOT NULL,
        trade_id bigint NOT NULL,
        created_at timestamptz NOT NULL,
        price numeric(38, 18) NOT NULL,
        qty numeric(38, 18) NOT NULL,
        quote_qty numeric(38, 18) NOT NULL,
        is_buyer_maker boolean NOT NULL,
        PRIMARY KEY (market_id, trade_id, created_at)
    )"""


def _create_table_sql() -> list[str]:
    chunk_days = int(timescale_settings()["CHUNK_DAYS"])
    return [
        COPY_TABLE_SQL,
        f"SELECT create_hypertable('{TRADE_TS_TABLE}', 'created_at', chunk_time_interval => interval '{chunk_days} days', if_not_exists => true)",
    ]


_COLUMNS = "market_id, trade_id, created_at, price, qty, quote_qty, is_buyer_maker"


def copy_trigger_sql() -> list[str]:
    """The trigger that copies every new ``trading_trade`` row (plain PL/pgSQL: it also runs
    without TimescaleDB, which is how tests/marketdata/test_trade_copy_trigger.py checks it
    under the engine's ``COPY`` on the suite's PostgreSQL)."""
    return [
        f"""
        CREATE OR REPLACE FUNCTION {COPY_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {TRADE_TS_TABLE} ({_COLUMNS}) SELECT {_COLUMNS} FROM kk99_new_trades;
            RETURN NULL;
        END $$""",
        f"DROP TRIGGER IF EXISTS {COPY_TRIGGER} ON {TRADE_TABLE}",
        f"CREATE TRIGGER {COPY_TRIGGER} AFTER INSERT ON {TRADE_TABLE} REFERENCING NEW TABLE AS kk99_new_trades "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {COPY_TRIGGER}()",
    ]


def _backfill_sql() -> str:
    # Rows committed before the trigger existed. Run right after creating the trigger in the
    # same transaction: CREATE TRIGGER's lock kept writers out, so nothing falls between.
    return (
        f"INSERT INTO {TRADE_TS_TABLE} ({_COLUMNS}) SELECT {_COLUMNS} FROM {TRADE_TABLE} "
        f"ON CONFLICT (market_id, trade_id, created_at) DO NOTHING"
    )


def _view_sql(view: CandleView) -> str:
    """Open/close by trade id (like the date_bin query): ``first``/``last`` ordered by the trade
    ids, carried up the hierarchy as first_trade_id / last_trade_id."""
    width = f"{view.seconds} seconds"
    if view.source == TRADE_TS_TABLE:
        select = f"""
            SELECT market_id, time_bucket('{width}'::interval, created_at) AS bucket,
                   first(price, trade_id) AS open, max(price) AS high, min(price) AS low, last(price, trade_id) AS close,
                   sum(qty) AS volume, sum(quote_qty) AS quote_volume, count(*) AS trades,
                   sum(qty) FILTER (WHERE NOT is_buyer_maker) AS taker_buy_volume,
                   sum(quote_qty) FILTER (WHERE NOT is_buyer_maker) AS taker_buy_quote_volume,
                   min(trade_id) AS first_trade_id, max(trade_id) AS last_trade_id
              FROM {TRADE_TS_TABLE}
             GROUP BY market_id, time_bucket('{width}'::interval, created_at)"""
    else:
        select = f"""
            SELECT market_id, time_bucket('{width}'::interval, bucket) AS bucket,
                   first(open, first_trade_id) AS open, max(high) AS high, min(low) AS low, last(close, last_trade_id) AS close,
                   sum(volume) AS volume, sum(quote_volume) AS quote_volume, sum(trades)::bigint AS trades,
                   sum(taker_buy_volume) AS taker_buy_volume, sum(taker_buy_quote_volume) AS taker_buy_quote_volume,
                   min(first_trade_id) AS first_trade_id, max(last_trade_id) AS last_trade_id
              FROM {view.source}
             GROUP BY market_id, time_bucket('{width}'::interval, bucket)"""
    # materialized_only = false: real-time aggregation — buckets newer than the last refresh are
    # computed from the source at query time, so a candle is never behind the trades.
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view.name} "
        f"WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS {select} WITH NO DATA"
    )


def _policy_sql() -> list[str]:
    s = timescale_settings()
    out = [
        f"ALTER TABLE {TRADE_TS_TABLE} SET (timescaledb.compress, timescaledb.compress_segmentby = 'market_id', "
        f"timescaledb.compress_orderby = 'trade_id, created_at')",
        f"SELECT add_compression_policy('{TRADE_TS_TABLE}', compress_after => interval '{int(s['COMPRESS_AFTER_DAYS'])} days', if_not_exists => true)",
    ]
    for view in CANDLE_VIEWS:
        out.append(
            f"SELECT add_continuous_aggregate_policy('{view.name}', start_offset => interval '{view.start_offset}', "
            f"end_offset => interval '{view.end_offset}', schedule_interval => interval '{view.schedule}', if_not_exists => true)"
        )
    if int(s["RAW_RETENTION_DAYS"]):
        # Only the copy's raw rows are dropped; trading_trade keeps every trade, and the
        # candle aggregates keep their buckets (their refresh windows are far shorter).
        out.append(f"SELECT add_retention_policy('{TRADE_TS_TABLE}', drop_after => interval '{int(s['RAW_RETENTION_DAYS'])} days', if_not_exists => true)")
    return out


class TimescaleMissing(RuntimeError):
    """KK99_TIMESCALEDB=1 but the database has no TimescaleDB extension to create."""


def timescale_setup(connection) -> list[str]:
    """Create (or complete) the TimescaleDB objects on ``connection`` (Django's or psycopg's,
    in autocommit). Returns the statements it ran. Idempotent."""
    ran: list[str] = []

    def run(cursor, sql: str) -> None:
        cursor.execute(sql)
        ran.append(" ".join(sql.split()))

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        if cursor.fetchone() is None:
            raise TimescaleMissing("KK99_TIMESCALEDB=1, but this PostgreSQL server has no timescaledb extension (docs/marketdata.md)")
        run(cursor, "CREATE EXTENSION IF NOT EXISTS timescaledb")
        for sql in _create_table_sql():
            run(cursor, sql)
        # Trigger + backfill in one transaction (no trade can fall between the two).
        run(cursor, "BEGIN")
        try:
            for sql in copy_trigger_sql():
                run(cursor, sql)
            run(cursor, _backfill_sql())
            run(cursor, "COMMIT")
        except Exception:
            cursor.execute("ROLLBACK")
            raise
        for view in CANDLE_VIEWS:
            run(cursor, _view_sql(view))
        # Materialise the history the copy holds, up to where the view's refresh policy stops
        # (newer buckets stay real-time, so trades committed now still show). Never from the
        # beginning of time: after the retention policy dropped old raw chunks, a refresh over
        # them would delete their candles. The copy's oldest UTC day is a chunk boundary
        # (chunks are whole days), so this window never cuts into dropped data.
        cursor.execute(f"SELECT date_trunc('day', min(created_at) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM {TRADE_TS_TABLE}")
        oldest = cursor.fetchone()[0]
        if oldest is not None:
            for view in CANDLE_VIEWS:
                run(cursor, f"CALL refresh_continuous_aggregate('{view.name}', '{oldest.isoformat()}'::timestamptz, now() - interval '{view.end_offset}')")
        for sql in _policy_sql():
            run(cursor, sql)
    return ran


def timescale_ready(connection) -> bool:
    """The copy, its trigger and every candle aggregate exist on ``connection``."""
    names = [TRADE_TS_TABLE, *(v.name for v in CANDLE_VIEWS)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)", [names])
        objects = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s", [COPY_TRIGGER])
        triggers = cursor.fetchone()[0]
    return objects == len(names) and triggers == 1
