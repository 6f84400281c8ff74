"""The outbox and its two bookkeeping tables.

Why the outbox carries ``txid`` (the writing transaction's id) and not only ``id``: a bigserial
id is taken at INSERT, not at COMMIT, so a relay that follows ``id > last_seen`` skips a row whose
transaction commits after a later one. The relay instead only reads rows whose ``txid`` is
older than the oldest transaction still in flight (``pg_snapshot_xmin``): that set can no
longer grow, so ``(txid, id)`` is a global position that is never overtaken."""
from __future__ import annotations

from django.db import models


class CurrentTxid(models.Func):
    """``pg_current_xact_id()`` as a bigint: the id of the transaction inserting the row."""

    template = "(pg_current_xact_id()::text::bigint)"
    output_field = models.BigIntegerField()


class OutboxEvent(models.Model):
    """One event, written in the transaction of the business action that caused it.

    ``stream`` is the ordering scope (``market.<SYMBOL>``, ``account.<account id>``,
    ``user.<user id>``); ``seq`` is gap-free within it, assigned under the stream head's row
    lock (:class:`StreamHead`), so seq order is commit order within a stream."""

    txid = models.BigIntegerField(db_default=CurrentTxid(), editable=False)
    stream = models.CharField(max_length=120)
    seq = models.BigIntegerField()
    event_type = models.CharField(max_length=60)
    version = models.PositiveSmallIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["stream", "seq"], name="events_outbox_stream_seq_uniq")]
        indexes = [models.Index(fields=["txid", "id"], name="events_outbox_position_idx")]

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq} {self.event_type}"


class StreamHead(models.Model):
    """The last ``seq`` given out in a stream. Its row lock serialises writers of a stream."""

    stream = models.CharField(max_length=120, primary_key=True)
    last_seq = models.BigIntegerField(default=0)


class RelayCursor(models.Model):
    """How far a relay has published: the ``(txid, event id)`` of the last event acknowledged
    by the transport. Advanced only after the acknowledgement."""

    name = models.CharField(max_length=60, primary_key=True)
    txid = models.BigIntegerField(default=0)
    event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class RelayStream(models.Model):
    """The last ``seq`` a relay published, per stream. Rows of one stream may become final out
    of seq order (``txid`` order is not commit order: a transaction can take its id before an
    other one that locks the stream head first), so the relay publishes a stream's rows only
    in seq order and holds a row back until its predecessor has gone out."""

    cursor = models.CharField(max_length=60)
    stream = models.CharField(max_length=120)
    seq = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cursor", "stream"], name="events_relaystream_uniq")]
