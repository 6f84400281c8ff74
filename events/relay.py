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
stream's duplicate window)."""
from __future__ import annotations

import logging
import time

from django.db import connection, transaction

from events import codec
from events.models import OutboxEvent, RelayCursor
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


def relay_once(transport: Transport, *, name: str = "default", limit: int = 500, prefix: str | None = None) -> int:
    """Publish the next batch; returns how many events were relayed (0 = caught up)."""
    cursor = cursor_get(name)
    rows = rows_next((cursor.txid, cursor.event_id), limit)
    if not rows:
        return 0
    transport.publish([message_for(r, prefix) for r in rows])
    last = rows[-1]
    with transaction.atomic():
        updated = RelayCursor.objects.filter(name=name, txid=cursor.txid, event_id=cursor.event_id).update(
            txid=last.txid, event_id=last.id
        )
    if updated != 1:
        raise RuntimeError(f"relay cursor {name!r} moved under us: two relays are running")
    return len(rows)


def relay_run(transport: Transport, *, name: str = "default", limit: int = 500, poll: float = 0.2,
              stop_when_idle: bool = False, prefix: str | None = None) -> int:
    """Loop ``relay_once``; returns the number relayed (when ``stop_when_idle``)."""
    total = 0
    while True:
        n = relay_once(transport, name=name, limit=limit, prefix=prefix)
        total += n
        if n == 0:
            if stop_when_idle:
                return total
            time.sleep(poll)
