"""The relay: outbox → transport, in global position order, nothing skipped, nothing lost.

Position = ``(txid, id)``. One statement reads the next rows whose writing transaction can no
longer be in flight: ``txid`` below the horizon = the oldest transaction of THIS database still
running in the statement's own snapshot (``pg_snapshot_xip``, with transactions of other
databases on the same server left out through ``pg_stat_activity`` — they never write our
outbox; one that cannot be attributed is kept, which only delays), or the snapshot's ``xmax``.
Every row below the horizon is final (committed and visible to that same snapshot, or rolled
back), so the cursor never passes a row that could still appear.

The cursor advances only after the transport acknowledged the batch. A crash in between sends
the batch again; ``Nats-Msg-Id = <stream>:<seq>`` makes JetStream drop the copies (within the
stream's duplicate window).

Within a stream, ``txid`` order is not seq order (a transaction may take its id before another
that locks the stream head first), so rows go out per stream strictly in seq order: a row whose
predecessor is not final yet is held back, and the cursor stops before it (see
:class:`events.models.RelayStream`)."""
from __future__ import annotations

import logging
import time

from django.db import connection, transaction

from events import codec
from events.models import OutboxEvent, RelayCursor, RelayStream
from events.transport import Message, Transport, subject_for

logger = logging.getLogger(__name__)

_NEXT_SQL = """
WITH snap AS (SELECT pg_current_snapshot() AS s),
others AS (
    SELECT backend_xid::text::bigint AS x FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
),
horizon AS (
    SELECT coalesce(
        (SELECT min(x::text::bigint) FROM snap, pg_snapshot_xip(snap.s) AS x
         WHERE (x::text::bigint %% 4294967296) NOT IN (SELECT x FROM others)),
        (SELECT pg_snapshot_xmax(s)::text::bigint FROM snap)
    ) AS h
)
SELECT id, txid, stream, seq, event_type, version, payload, created_at FROM {table}
WHERE (txid, id) > (%s, %s) AND txid < (SELECT h FROM horizon)
ORDER BY txid, id LIMIT %s
"""


def cursor_get(name: str) -> RelayCursor:
    cursor, _ = RelayCursor.objects.get_or_create(name=name)
    return cursor


def rows_next(after: tuple[int, int], limit: int) -> list[OutboxEvent]:
    """The next ``limit`` final rows after position ``after`` (autocommit: a fresh snapshot)."""
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    return list(OutboxEvent.objects.raw(_NEXT_SQL.format(table=table), [after[0], after[1], limit]))


def message_for(row: OutboxEvent, prefix: str | None = None) -> Message:
    data = codec.encode(row.event_type, row.version, codec.record(row))
    return Message(subject=subject_for(row.stream, prefix), data=data, msg_id=f"{row.stream}:{row.seq}")


def _published(name: str, streams: set[str]) -> dict[str, int]:
    rows = RelayStream.objects.filter(cursor=name, stream__in=streams).values_list("stream", "seq")
    return {stream: 0 for stream in streams} | dict(rows)


def _published_save(name: str, heads: dict[str, int]) -> None:
    """One upsert for every stream the batch published to."""
    if not heads:
        return
    table = connection.ops.quote_name(RelayStream._meta.db_table)
    streams = sorted(heads)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (cursor, stream, seq) SELECT %s, s, q FROM unnest(%s::varchar[], %s::bigint[]) AS v(s, q) "
            f"ORDER BY s ON CONFLICT (cursor, stream) DO UPDATE SET seq = EXCLUDED.seq",
            [name, streams, [heads[s] for s in streams]],
        )


def _in_stream_order(rows: list[OutboxEvent], published: dict[str, int]) -> tuple[list[OutboxEvent], int]:
    """The rows that may go out now — each stream's next seqs, in order — and how many rows
    (from the front of ``rows``, in position order) are fully dealt with."""
    expected = dict(published)
    out: list[OutboxEvent] = []
    waiting = list(rows)
    while True:  # passes until nothing more can go: a later row may unblock an earlier one
        still = []
        for r in waiting:
            if r.seq <= expected[r.stream]:
                continue  # already out (a re-read after a held-back row)
            if r.seq == expected[r.stream] + 1:
                expected[r.stream] = r.seq
                out.append(r)
            else:
                still.append(r)
        if len(still) == len(waiting):
            break
        waiting = still
    held = {id(r) for r in waiting}
    done = next((i for i, r in enumerate(rows) if id(r) in held), len(rows))
    return out, done


def relay_once(transport: Transport, *, name: str = "default", limit: int = 500, prefix: str | None = None) -> int:
    """Publish the next batch; returns how many rows were dealt with (published, or found
    already published); 0 = nothing could go."""
    cursor = cursor_get(name)
    rows = rows_next((cursor.txid, cursor.event_id), limit)
    if not rows:
        return 0
    published = _published(name, {r.stream for r in rows})
    out, done = _in_stream_order(rows, published)
    if out:
        transport.publish([message_for(r, prefix) for r in out])
    heads: dict[str, int] = {}
    for r in out:
        heads[r.stream] = r.seq
    with transaction.atomic():
        if done:
            last = rows[done - 1]
            updated = RelayCursor.objects.filter(name=name, txid=cursor.txid, event_id=cursor.event_id).update(
                txid=last.txid, event_id=last.id
            )
            if updated != 1:
                raise RuntimeError(f"relay cursor {name!r} moved under us: two relays are running")
        _published_save(name, heads)
    return max(len(out), done)


def _has_final_rows(name: str) -> bool:
    cursor = cursor_get(name)
    return bool(rows_next((cursor.txid, cursor.event_id), 1))


def relay_run(transport: Transport, *, name: str = "default", limit: int = 500, poll: float = 0.2,
              stop_when_idle: bool = False, prefix: str | None = None) -> int:
    """Loop ``relay_once``; returns the number relayed (when ``stop_when_idle``)."""
    total = 0
    window = limit
    while True:
        n = relay_once(transport, name=name, limit=window, prefix=prefix)
        total += n
        # nothing could go although rows are waiting: a held-back row's predecessor lies beyond
        # the window — widen it (bounded by the rows in flight), else back to normal
        window = min(window * 2, 100 * limit) if n == 0 and _has_final_rows(name) else limit
        if n == 0:
            if stop_when_idle:
                return total
            time.sleep(poll)
