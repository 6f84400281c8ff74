"""Claiming work for a batch: cancel requests first, then ``PENDING_NEW`` orders, oldest
first, taken by *state* with ``FOR UPDATE SKIP LOCKED`` (never by an id cursor: a bigserial
id is not commit order). On PostgreSQL the rows are read as binary tuples and turned into
Orders without the queryset machinery; elsewhere the ORM query does the same."""
from __future__ import annotations

from django.db import connection
from django.db.models import Q
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

from kk99.db import pg_cursor
from trading.models import Order

S = Order.Status


def claim(market_id: int, limit: int, *, news: bool = True) -> tuple[list[Order], list[Order]]:
    """(cancel requests, new orders) of ``market_id``, at most ``limit`` in all, row-locked.
    ``news=False`` (a halted market): cancel requests only; new orders stay queued."""
    with_news = news
    if connection.vendor == "postgresql":
        return _claim_pg(market_id, limit, with_news)
    base_qs = Order.objects.select_for_update(skip_locked=True).filter(market_id=market_id)
    cancels = list(base_qs.filter(cancel_requested=True, status__in=Order.OPEN_STATUSES).order_by("id")[:limit])
    news = []
    if len(cancels) < limit and with_news:
        news = list(base_qs.filter(status=S.PENDING_NEW, cancel_requested=False).order_by("id")[: limit - len(cancels)])
    return cancels, news


def claimable(market_id: int) -> bool:
    """Whether :func:`claim` would find anything in ``market_id`` — the same predicates, read
    without locks (the engine's cheap check after a batch that took less than it could)."""
    if connection.vendor == "postgresql":
        with pg_cursor() as cur:  # server-bound: prepared after a few checks
            cur.execute(_CLAIMABLE_SQL, [market_id, S.PENDING_NEW.value, list(Order.OPEN_STATUSES)])
            return cur.fetchone() is not None
    queued = Q(status=S.PENDING_NEW, cancel_requested=False) | Q(cancel_requested=True, status__in=Order.OPEN_STATUSES)
    return Order.objects.filter(queued, market_id=market_id).exists()  # one round trip


_CLAIMABLE_SQL = (
    "SELECT 1 FROM trading_order WHERE market_id = %s::bigint AND ((status = %s::varchar AND NOT cancel_requested) "
    "OR (cancel_requested AND status = ANY(%s::varchar[]))) LIMIT 1"
)


_ORDER_ATTNAMES: list[str] = []
_CLAIM_SQL: dict[str, str] = {}


def _claim_sql() -> tuple[list[str], dict[str, str]]:
    if not _CLAIM_SQL:
        qn = connection.ops.quote_name
        fields = Order._meta.concrete_fields
        cols = ", ".join(qn(f.column) for f in fields)
        table = qn(Order._meta.db_table)
        _ORDER_ATTNAMES[:] = [f.attname for f in fields]
        _CLAIM_SQL["cancels"] = (
            f"SELECT {cols} FROM {table} WHERE market_id = %b AND cancel_requested AND status = ANY(%b) "
            "ORDER BY id LIMIT %b FOR UPDATE SKIP LOCKED"
        )
        _CLAIM_SQL["news"] = (
            f"SELECT {cols} FROM {table} WHERE market_id = %b AND status = %b AND NOT cancel_requested "
            "ORDER BY id LIMIT %b FOR UPDATE SKIP LOCKED"
        )
        # Both in one round trip: each CTE takes its rows as its own statement would; the
        # cancel requests come first (the flag column), each part in id order.
        _CLAIM_SQL["both"] = (
            f"WITH c AS ({_CLAIM_SQL['cancels']}), n AS ({_CLAIM_SQL['news']}) "
            "SELECT * FROM (SELECT true AS is_cancel, c.* FROM c UNION ALL SELECT false, n.* FROM n) x ORDER BY is_cancel DESC, id"
        )
    return _ORDER_ATTNAMES, _CLAIM_SQL


def _claim_pg(market_id: int, limit: int, with_news: bool = True) -> tuple[list[Order], list[Order]]:
    """The claim on PostgreSQL: the same two ``SELECT … FOR UPDATE SKIP LOCKED`` statements as
    the ORM query, rows read as binary tuples (no text parsing of timestamps and numerics) and
    turned into Orders with ``Model.from_db`` (positional, no queryset machinery)."""
    attnames, sql = _claim_sql()
    with pg_cursor() as cur:
        if not with_news:
            cur.execute(sql["cancels"], [market_id, list(Order.OPEN_STATUSES), limit], binary=True)
            return _orders_from_rows(attnames, cur.fetchall()), []
        # ONE statement for both kinds. The news part may lock up to ``limit`` rows although
        # cancel requests used part of the budget: the extra ones stay PENDING_NEW, untouched,
        # and are unlocked at the batch's commit (the next batch claims them).
        cur.execute(sql["both"], [market_id, list(Order.OPEN_STATUSES), limit, market_id, S.PENDING_NEW.value, limit], binary=True)
        rows = cur.fetchall()
    cancels = _orders_from_rows(attnames, [row[1:] for row in rows if row[0]])
    news = _orders_from_rows(attnames, [row[1:] for row in rows if not row[0]][: max(0, limit - len(cancels))])
    return cancels, news


def _orders_from_rows(attnames: list[str], rows: list[tuple]) -> list[Order]:
    """Order instances from full rows (every concrete column, in field order), as
    ``Model.from_db`` would make them but without ``Model.__init__``: the instance dict is
    filled in one step, so no per-field descriptor runs (three FK ``__set__`` per order were
    7 % of the engine). Falls back to ``from_db`` if anyone listens to Order's
    ``pre_init``/``post_init`` signals, which this shortcut would not send."""
    if pre_init.has_listeners(Order) or post_init.has_listeners(Order):
        return [Order.from_db("default", attnames, row) for row in rows]
    new = Order.__new__
    out = []
    for row in rows:
        o = new(Order)
        state = ModelState()
        state.adding = False
        state.db = "default"
        d = o.__dict__
        d.update(zip(attnames, row))
        d["_state"] = state
        out.append(o)
    return out


