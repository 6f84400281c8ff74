"""The relay follows (txid, id), never the bare id: a row whose transaction commits late is not
skipped; the cursor moves only after the transport acknowledged."""
from __future__ import annotations

import psycopg
import pytest
from django.db import connection, transaction

from events import codec
from events.models import OutboxEvent, RelayCursor
from events.outbox import events_append
from events.relay import relay_once
from tests.events.conftest import RecordingTransport

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _user_event(user_id: int, change: str):
    return (f"user.{user_id}", "user.updated", {"user_id": user_id, "change": change, "attributes": {}})


def _other_connection():
    s = connection.settings_dict
    return psycopg.connect(host=s.get("HOST") or "127.0.0.1", port=s.get("PORT") or 5432, user=s.get("USER"),
                           password=s.get("PASSWORD") or None, dbname=s["NAME"])


def _insert_raw(conn, stream: str, seq: int, change: str):
    conn.execute(
        "INSERT INTO events_outboxevent (stream, seq, event_type, version, payload, created_at) "
        "VALUES (%s, %s, 'user.updated', 1, %s::jsonb, now())",
        [stream, seq, f'{{"user_id": 9, "change": "{change}", "attributes": {{}}}}'],
    )


def test_a_row_committed_late_is_relayed_not_skipped():
    slow = _other_connection()
    try:
        with slow.transaction():
            _insert_raw(slow, "user.9", 1, "early-id-late-commit")  # takes the lower id, stays open
            with transaction.atomic():
                events_append([_user_event(8, "later-id-early-commit")])
            t = RecordingTransport()
            # a relay by "id > last seen" would publish the committed row and move past the open one
            assert relay_once(t) == 0
            assert t.sent == []
        relayed = RecordingTransport()
        assert relay_once(relayed) == 2
    finally:
        slow.close()
    changes = [codec.decode(m.data)[2]["change"] for m in relayed.sent]
    assert sorted(changes) == ["early-id-late-commit", "later-id-early-commit"]
    assert relay_once(relayed) == 0


def test_a_rolled_back_row_never_blocks_or_appears():
    other = _other_connection()
    try:
        other.execute("BEGIN")
        _insert_raw(other, "user.9", 1, "rolled-back")
        other.execute("ROLLBACK")
    finally:
        other.close()
    with transaction.atomic():
        events_append([_user_event(8, "kept")])
    t = RecordingTransport()
    assert relay_once(t) == 1
    assert codec.decode(t.sent[0].data)[2]["change"] == "kept"


def test_the_cursor_moves_only_after_the_transport_acknowledged():
    with transaction.atomic():
        events_append([_user_event(1, str(i)) for i in range(5)])
    failing = RecordingTransport(fail_after=3)
    from events.transport import TransportError

    with pytest.raises(TransportError):
        relay_once(failing)
    assert RelayCursor.objects.get(name="default").event_id == 0
    again = RecordingTransport()
    assert relay_once(again) == 5
    assert [m.msg_id for m in again.sent] == [f"user.1:{i}" for i in range(1, 6)]
    assert RelayCursor.objects.get(name="default").event_id == OutboxEvent.objects.order_by("id").last().id


def test_a_long_transaction_in_another_database_does_not_stall_the_relay():
    s = connection.settings_dict
    other = psycopg.connect(host=s.get("HOST") or "127.0.0.1", port=s.get("PORT") or 5432, user=s.get("USER"),
                            password=s.get("PASSWORD") or None, dbname="postgres")
    try:
        with other.transaction():
            other.execute("SELECT pg_current_xact_id()")  # holds an xid in another database
            with transaction.atomic():
                events_append([_user_event(1, "x")])
            assert relay_once(RecordingTransport()) == 1
    finally:
        other.close()


def test_a_stream_goes_out_in_seq_order_even_when_txid_order_differs():
    """T1 takes its transaction id first, T2 takes the stream's seq 1 and commits, then T1
    takes seq 2: by txid T1's row comes first, but the stream must go out 1, 2."""
    t1 = _other_connection()
    try:
        with t1.transaction():
            t1.execute("SELECT pg_current_xact_id()")  # the lower txid
            with transaction.atomic():
                events_append([_user_event(5, "first")])  # seq 1, higher txid, commits first
            t1.execute("UPDATE events_streamhead SET last_seq = last_seq + 1 WHERE stream = 'user.5'")
            _insert_raw(t1, "user.5", 2, "second")
        positions = list(OutboxEvent.objects.order_by("txid", "id").values_list("seq", flat=True))
        assert positions == [2, 1]  # the trap: position order is not seq order
        t = RecordingTransport()
        assert relay_once(t) == 2
    finally:
        t1.close()
    assert [m.msg_id for m in t.sent] == ["user.5:1", "user.5:2"]
    assert [codec.decode(m.data)[2]["change"] for m in t.sent] == ["first", "second"]


def test_a_row_whose_predecessor_is_not_final_is_held_back_and_the_cursor_stops_before_it():
    from events.relay import _in_stream_order

    class R:
        def __init__(self, stream, seq):
            self.stream, self.seq = stream, seq

    rows = [R("a", 2), R("b", 1), R("a", 4), R("a", 3)]
    out, done = _in_stream_order(rows, {"a": 1, "b": 0})
    assert [(r.stream, r.seq) for r in out] == [("a", 2), ("b", 1), ("a", 3), ("a", 4)]
    assert done == 4
    out, done = _in_stream_order([R("a", 3), R("b", 1)], {"a": 1, "b": 0})
    assert [(r.stream, r.seq) for r in out] == [("b", 1)] and done == 0
