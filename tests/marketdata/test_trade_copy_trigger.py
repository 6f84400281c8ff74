"""The TimescaleDB mode's copy trigger under the engine's real write path, on the suite's
PostgreSQL: the engine inserts trades with ``COPY`` inside its batch transaction, and the
statement-level trigger (plain PL/pgSQL, the same SQL timescale_setup installs) copies exactly
those rows — and a batch that rolls back leaves no copy."""
from __future__ import annotations

import pytest
from django.db import connection, transaction

from marketdata.timescale import COPY_TABLE_SQL, TRADE_TS_TABLE, copy_trigger_sql
from tests.fixtures import place
from trading.models import Trade

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def copy_table(db):
    with connection.cursor() as cursor:  # DDL is transactional: the test's rollback removes it
        cursor.execute(COPY_TABLE_SQL)
        for sql in copy_trigger_sql():
            cursor.execute(sql)


def _copy_rows():
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT market_id, trade_id, created_at, price, qty, quote_qty, is_buyer_maker FROM {TRADE_TS_TABLE} ORDER BY market_id, trade_id")
        return cursor.fetchall()


def _trade_rows():
    return list(Trade.objects.order_by("market_id", "trade_id").values_list("market_id", "trade_id", "created_at", "price", "qty", "quote_qty", "is_buyer_maker"))


def test_the_engines_copy_insert_fills_the_trade_copy_exactly(copy_table, engine, market, alice, bob):
    for price in ("100", "101", "102"):
        place(alice, market, "SELL", quantity="1", price=price)
    engine.run_until_idle()
    place(bob, market, "BUY", quantity="3", price="102")  # one taker, three trades, one COPY
    place(bob, market, "BUY", quantity="0.5", price="90")
    engine.run_until_idle()
    assert Trade.objects.count() == 3
    assert _copy_rows() == _trade_rows()


def test_a_rolled_back_trade_insert_leaves_no_copy(copy_table, engine, market, alice, bob):
    place(alice, market, "SELL", quantity="1", price="100")
    place(bob, market, "BUY", quantity="1", price="100")
    with pytest.raises(RuntimeError), transaction.atomic():
        engine.run_until_idle()
        assert Trade.objects.count() == 1 and len(_copy_rows()) == 1
        raise RuntimeError("the batch fails after the insert")
    assert Trade.objects.count() == 0 and _copy_rows() == []
