"""trading_order / trading_trade indexes: exactly the ones the queries use (issue 10 item 7)."""
from __future__ import annotations

import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _indexes(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        return {row[0] for row in cursor.fetchall()}


def test_an_order_insert_maintains_only_the_indexes_its_queries_use():
    assert _indexes("trading_order") == {
        "trading_order_pkey",
        "order_market_status",  # the engine's claim of PENDING_NEW orders; rebuild
        "order_user_status",  # a user's open orders
        "order_user_market_recent",  # allOrders per user and market
        "order_cancel_requests",  # the engine's claim of cancel requests
        "order_client_id_unique_per_user",
        "order_engine_seq_unique_per_market",
        # margin orders of a margin account (partial: a spot order, ledger_account NULL, adds no entry)
        "order_margin_account_status",
    }


def test_a_trade_insert_maintains_only_the_indexes_its_queries_use():
    found = _indexes("trading_trade")
    assert {"trade_market_time", "trade_maker_user_time", "trade_taker_user_time", "trade_id_unique_per_market"} <= found
    assert len(found) == 7, found  # + pkey, maker_order, taker_order (an order's fills)


def test_trading_order_leaves_room_for_hot_updates():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'trading_order'")
        assert "fillfactor=80" in (cursor.fetchone()[0] or [])
