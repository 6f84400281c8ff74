"""Writing events into the outbox — the ONE way an event enters the feed.

Call :func:`events_append` inside the business action's transaction. It locks the stream heads
(one statement, streams in sorted order: no deadlocks between two writers), takes the next
``seq`` of each stream and inserts the rows (``COPY`` on PostgreSQL). If the transaction rolls
back, the heads roll back with it: sequences stay gap-free.

Producers (each a minimal hook in its own app): the engine batch
(:func:`market_batch_events`, trades then order updates, per market), the ledger posting
(:func:`balance_events`, per account), deposits/withdrawals and user/KYC changes
(:func:`events_append` directly)."""
from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from events import schemas
from events.models import OutboxEvent, StreamHead
from kk99.db import pg_cursor

MARKET, ACCOUNT, USER = "market", "account", "user"


def market_stream(symbol: str) -> str:
    return f"{MARKET}.{symbol}"


def account_stream(account_id: int) -> str:
    return f"{ACCOUNT}.{account_id}"


def user_stream(user_id: int) -> str:
    return f"{USER}.{user_id}"


def _s(v: Any) -> str | None:
    """A decimal on the wire: fixed-point, no exponent, no trailing zeros ("0.5", "100"), so
    the engine's in-memory scale and the column's NUMERIC(38, 18) give the same string."""
    if v is None:
        return None
    d = Decimal(v)
    return format(d.normalize(), "f") if d else "0"


def _ms(dt) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


_deferred = threading.local()


@contextmanager
def events_deferred():
    """Inside this block (itself inside the business action's transaction) the events of
    every :func:`events_append` are collected and appended together when the block ends:
    ONE statement for all of them. The engine's batch wraps its writes in it, so the market
    stream's trades and orders and the ledger posting's balance events cost one round trip,
    not two. Order within each stream is kept; the calls inside return ``[]`` (the seqs are
    given at the end). An exception leaves nothing collected (the transaction rolls back);
    nested blocks join the outer one."""
    if getattr(_deferred, "events", None) is not None:
        yield
        return
    _deferred.events, _deferred.now = [], None
    try:
        yield
        events, now = _deferred.events, _deferred.now
    finally:
        _deferred.events = _deferred.now = None
    events_append(events, now=now)


def events_append(events: Iterable[tuple[str, str, dict]], *, now=None) -> list[tuple[str, int]]:
    """Append ``(stream, event_type, payload)`` events, in the given order within each
    stream. Must run inside the caller's transaction. Returns the (stream, seq) given
    (``[]`` inside :func:`events_deferred`)."""
    events = list(events)
    if not events:
        return []
    if not connection.in_atomic_block:
        raise RuntimeError("events_append must run inside the business action's transaction")
    for _, event_type, _ in events:
        schemas.current_version(event_type)  # unknown types fail here, before any write
    pending = getattr(_deferred, "events", None)
    if pending is not None:
        pending.extend(events)
        _deferred.now = _deferred.now or now
        return []
    counts = Counter(stream for stream, _, _ in events)
    if connection.vendor == "postgresql" and len(events) <= ONE_STATEMENT_MAX:
        return _append_pg(events, counts, now or timezone.now())
    last = _heads_advance(counts)
    nxt = {s: last[s] - counts[s] + 1 for s in counts}
    now = now or timezone.now()
    rows = []
    given = []
    for stream, event_type, payload in events:
        seq = nxt[stream]
        nxt[stream] += 1
        rows.append((stream, seq, event_type, schemas.current_version(event_type), payload))
        given.append((stream, seq))
    _rows_insert(rows, now)
    return given


ONE_STATEMENT_MAX = 64
"""Up to this many events are appended by ONE statement (heads advanced and rows inserted
together: one round trip — a ledger hold appends one); more go by the head advance + ``COPY``
(an engine batch appends hundreds, where COPY is cheaper than binding arrays)."""

_APPEND_SQL = """
WITH h AS (
    INSERT INTO {head} (stream, last_seq) SELECT s, n FROM unnest(%(streams)s::varchar[], %(counts)s::bigint[]) AS v(s, n)
    ORDER BY s ON CONFLICT (stream) DO UPDATE SET last_seq = {head}.last_seq + EXCLUDED.last_seq
    RETURNING stream, last_seq
), ins AS (
    INSERT INTO {outbox} (stream, seq, event_type, version, payload, created_at)
    SELECT r.stream, h.last_seq - r.back, r.event_type, r.version, r.payload, %(now)s::timestamptz
      FROM unnest(%(r_stream)s::varchar[], %(r_back)s::bigint[], %(r_type)s::varchar[], %(r_version)s::int[], %(r_payload)s::jsonb[])
           AS r(stream, back, event_type, version, payload)
      JOIN h ON h.stream = r.stream
    RETURNING 1
)
SELECT h.stream, h.last_seq, (SELECT count(*) FROM ins) FROM h
"""


def _append_pg(events: list[tuple[str, str, dict]], counts: Counter, now) -> list[tuple[str, int]]:
    """The heads advanced (in sorted stream order, as :func:`_heads_advance`) and the rows
    inserted in ONE statement; each row's seq is its head's new value minus how many events of
    its stream follow it in this call."""
    streams = sorted(counts)
    left = Counter(counts)
    backs = []
    for stream, _, _ in events:
        left[stream] -= 1
        backs.append(left[stream])
    qn = connection.ops.quote_name
    sql = _APPEND_SQL.format(head=qn(StreamHead._meta.db_table), outbox=qn(OutboxEvent._meta.db_table))
    with pg_cursor() as cursor:  # server-bound: prepared after a few calls on a connection
        cursor.execute(sql, {
            "streams": streams, "counts": [counts[s] for s in streams], "now": now,
            "r_stream": [e[0] for e in events], "r_back": backs, "r_type": [e[1] for e in events],
            "r_version": [schemas.current_version(e[1]) for e in events], "r_payload": [Jsonb(e[2]) for e in events],
        })
        rows = cursor.fetchall()
    last = {stream: seq for stream, seq, _ in rows}
    if rows[0][2] != len(events):  # pragma: no cover — the statement cannot do otherwise
        raise RuntimeError(f"outbox append: {rows[0][2]} of {len(events)} rows written")
    return [(stream, last[stream] - back) for (stream, _, _), back in zip(events, backs, strict=True)]


def _heads_advance(counts: Counter) -> dict[str, int]:
    streams = sorted(counts)
    table = connection.ops.quote_name(StreamHead._meta.db_table)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (stream, last_seq) SELECT s, n FROM unnest(%s::varchar[], %s::bigint[]) AS v(s, n) "
                f"ORDER BY s ON CONFLICT (stream) DO UPDATE SET last_seq = {table}.last_seq + EXCLUDED.last_seq "
                f"RETURNING stream, last_seq",
                [streams, [counts[s] for s in streams]],
            )
            return dict(cursor.fetchall())
    out = {}
    for s in streams:  # other databases: one row at a time, same order
        head, _ = StreamHead.objects.select_for_update().get_or_create(stream=s)
        head.last_seq += counts[s]
        head.save(update_fields=["last_seq"])
        out[s] = head.last_seq
    return out


def _rows_insert(rows: list[tuple], now) -> None:
    if connection.vendor != "postgresql":
        OutboxEvent.objects.bulk_create(
            [OutboxEvent(stream=s, seq=q, event_type=t, version=v, payload=p, created_at=now) for s, q, t, v, p in rows]
        )
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        with cursor.copy(
            f"COPY {qn(OutboxEvent._meta.db_table)} (stream, seq, event_type, version, payload, created_at) FROM STDIN"
        ) as copy:
            for s, q, t, v, p in rows:
                copy.write_row((s, q, t, v, Jsonb(p), now))


# --- payloads: one home for each event type's fields ---------------------------------------


def trade_payload(t, symbol: str) -> dict:
    return {
        "symbol": symbol, "trade_id": int(t.trade_id), "engine_seq": int(t.engine_seq), "price": _s(t.price),
        "qty": _s(t.qty), "quote_qty": _s(t.quote_qty), "maker_order_id": int(t.maker_order_id),
        "taker_order_id": int(t.taker_order_id), "maker_user_id": int(t.maker_user_id), "taker_user_id": int(t.taker_user_id),
        "is_buyer_maker": bool(t.is_buyer_maker), "maker_fee": _s(t.maker_fee), "taker_fee": _s(t.taker_fee),
        "time_ms": _ms(t.created_at),
        "maker_fee_asset_id": None if t.maker_fee_asset_id is None else int(t.maker_fee_asset_id),
        "taker_fee_asset_id": None if t.taker_fee_asset_id is None else int(t.taker_fee_asset_id),
    }


def order_payload(o, symbol: str) -> dict:
    return {
        "symbol": symbol, "order_id": int(o.id), "user_id": int(o.user_id), "status": str(o.status),
        "executed_qty": _s(o.executed_qty), "cumulative_quote_qty": _s(o.cumulative_quote_qty),
        "engine_seq": None if o.engine_seq is None else int(o.engine_seq), "reject_reason": o.reject_reason or "",
        "time_ms": _ms(o.updated_at),
    }


def market_batch_events(*, symbol: str, trades: list, orders: list, now=None) -> None:
    """The engine batch's events, in the engine's order: trades (by trade id), then the final
    state of every order the batch touched (by engine sequence, then id)."""
    stream = market_stream(symbol)
    evs = [(stream, "trade.executed", trade_payload(t, symbol)) for t in sorted(trades, key=lambda t: t.trade_id)]
    ordered = sorted(orders, key=lambda o: (o.engine_seq is None, o.engine_seq or 0, o.id))
    evs += [(stream, "order.updated", order_payload(o, symbol)) for o in ordered]
    events_append(evs, now=now)


def balance_payload(*, account_id: int, asset_id: int, journal_event_id: int | None, kind: str, d_avail: Decimal, d_locked: Decimal) -> dict:
    return {
        "account_id": int(account_id), "asset_id": int(asset_id), "journal_event_id": None if journal_event_id is None else int(journal_event_id),
        "kind": str(kind), "delta_available": _s(d_avail), "delta_locked": _s(d_locked),
    }


def balance_events(*, journal_event_id: int, kind: str, changes: Iterable[tuple[int, int, Decimal, Decimal]], now=None) -> None:
    """One ``balance.changed`` per (account, asset) a journal event moved:
    ``changes`` = (account id, asset id, delta available, delta locked)."""
    evs = [
        (account_stream(account_id), "balance.changed", balance_payload(
            account_id=account_id, asset_id=asset_id, journal_event_id=journal_event_id, kind=kind, d_avail=d_avail, d_locked=d_locked,
        ))
        for account_id, asset_id, d_avail, d_locked in sorted(changes, key=lambda c: (c[0], c[1]))
        if d_avail != 0 or d_locked != 0
    ]
    events_append(evs, now=now)


_BALANCE_EVENT_CTES = """
ob_head AS (
    INSERT INTO {head} (stream, last_seq) SELECT %(ob_stream)s, 1 FROM {journal_event}
    ON CONFLICT (stream) DO UPDATE SET last_seq = {head}.last_seq + 1
    RETURNING last_seq
), ob_row AS (
    INSERT INTO {outbox} (stream, seq, event_type, version, payload, created_at)
    SELECT %(ob_stream)s, ob_head.last_seq, 'balance.changed', %(ob_version)s,
           %(ob_payload)s::jsonb || jsonb_build_object('journal_event_id', {journal_event}.id), %(ob_now)s
      FROM ob_head, {journal_event}
    RETURNING 1
)"""


def balance_event_ctes(*, journal_event: str, account_id: int, asset_id: int, kind: str, d_avail: Decimal, d_locked: Decimal, now) -> tuple[str, dict]:
    """For a statement that journals ONE balance change: the CTEs (``ob_head``, ``ob_row``)
    that append its ``balance.changed`` event — what :func:`balance_events` writes — in the
    same statement. ``journal_event`` names the CTE that returns the journal event's ``id``
    (one row, or none: then nothing is appended). Returns (SQL, parameters)."""
    qn = connection.ops.quote_name
    sql = _BALANCE_EVENT_CTES.format(head=qn(StreamHead._meta.db_table), outbox=qn(OutboxEvent._meta.db_table), journal_event=journal_event)
    payload = balance_payload(account_id=account_id, asset_id=asset_id, journal_event_id=None, kind=kind, d_avail=d_avail, d_locked=d_locked)
    del payload["journal_event_id"]
    return sql, {
        "ob_stream": account_stream(account_id), "ob_version": schemas.current_version("balance.changed"),
        "ob_payload": Jsonb(payload), "ob_now": now,
    }


