"""The one path from committed state to real-time clients.

``publish_on_commit(event_type, payload, groups=[...])`` schedules a Channels ``group_send``
for after the surrounding transaction commits (immediately when there is none). Nothing is
ever sent for a transaction that rolls back; if the process dies between commit and send the
event is lost, which is why every stream carries a sequence number (trade ids, depth update
ids) so clients detect gaps and re-fetch a snapshot.

The Channels message is ``{"type": event_type, "payload": payload}``: a consumer handles
``"trade.batch"`` with a method ``trade_batch`` (Channels replaces dots with underscores).
Group names come only from the small functions below. Payloads must be JSON-serialisable
(Decimals as strings).

Not blocking the committer. With a network channel layer (Redis) the on-commit hook only
*enqueues* the message; one background sender thread per process, with its own long-lived
event loop (so the layer keeps its connections), sends the queue in FIFO order, one message
after another — so the events of a group arrive in the order they were committed. The
request (or the engine batch) never waits for Redis, and no event loop/thread is created per
send (``async_to_sync`` did both: 14 % of an order placement). ``publish_flush()`` waits until
the queue is empty (benchmarks, graceful shutdown). The in-memory layer (tests, the embedded
demo) keeps the synchronous path: its queues are asyncio objects of the server's loop, which
``async_to_sync`` reaches (see ``trading/streams/embedded.py``). ``settings.KK99
["PUBLISH_BACKGROUND"] = False`` forces the synchronous path everywhere.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.db import transaction

from kk99.conf import kk99_setting

logger = logging.getLogger(__name__)


def market_group(symbol: str) -> str:
    """Public market data of one market: trades, depth diffs, ticker."""
    return f"market.{symbol.upper()}"


def user_group(user_id: int) -> str:
    """A user's private stream: order updates, fills, balance changes."""
    return f"user.{int(user_id)}"


def markets_group() -> str:
    """Every market's status changes (halts, cancel-only …)."""
    return "markets"


async def _send_all(layer, message: dict[str, Any], groups: list[str]) -> None:
    for group in groups:
        try:
            await layer.group_send(group, message)
        except Exception:  # after commit a failed send must not undo anything
            logger.exception("publish of %s to %s failed", message["type"], group)


async def groups_listened(layer, groups: set[str]) -> set[str] | None:
    """Which of ``groups`` have a member now, in ONE pipelined round trip per Redis host — or
    None (send to every group) when the layer is not ``channels_redis``'s or Redis fails.

    ``group_send`` costs two round trips even for a group nobody listens to (most users'
    private groups, most of the time), and an engine batch sends to several: the background
    sender asks once for the whole queue it drained and skips the empty groups. A consumer
    that joins between this read and the send misses that message exactly as if it had joined
    a moment later — the streams' sequence numbers and snapshots cover it. Members older than
    the layer's ``group_expiry`` count as gone, as in ``group_send``."""
    if not groups or not isinstance(layer, RedisChannelLayer):
        return None
    try:
        by_host: dict[int, list[str]] = {}
        for group in groups:
            by_host.setdefault(layer.consistent_hash(group), []).append(group)
        oldest = int(time.time()) - layer.group_expiry
        listened: set[str] = set()
        for index, names in by_host.items():
            pipe = layer.connection(index).pipeline(transaction=False)
            for name in names:
                pipe.zcount(layer._group_key(name), f"({oldest}", "+inf")
            counts = await pipe.execute()
            listened.update(name for name, count in zip(names, counts) if count)
        return listened
    except Exception:  # the sends below will meet (and log) the same outage
        logger.warning("group membership read failed; sending to every group", exc_info=True)
        return None


def _background_wanted(layer) -> bool:
    if not kk99_setting("PUBLISH_BACKGROUND"):
        return False
    return not isinstance(layer, InMemoryChannelLayer)


class _Sender:
    """One daemon thread per process with one event loop: sends queued messages in order.

    Bounded: past ``MAX_QUEUE`` messages (the layer is down or far too slow) new messages are
    dropped with a warning — exactly what a crash between commit and publish does, and clients
    recover from it by sequence numbers and snapshots."""

    MAX_QUEUE = 100_000

    def __init__(self, layer) -> None:
        self.layer = layer
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.pending = 0  # enqueued and not yet sent
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.dropped = 0
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="kk99-publish", daemon=True)
        self.thread.start()

    def put(self, message: dict[str, Any], groups: list[str]) -> None:
        with self.lock:
            if self.pending >= self.MAX_QUEUE:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    logger.warning("publish queue full: dropped %d messages", self.dropped)
                return
            self.pending += 1
        self.queue.put((message, groups))

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        while True:
            items = [self.queue.get()]
            try:
                while len(items) < 1000:
                    items.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            try:
                loop.run_until_complete(self._send_items(items))
            except Exception:  # the sender must survive anything
                logger.exception("publish sender failed")
            with self.lock:
                self.pending -= len(items)
                if self.pending == 0:
                    self.idle.notify_all()

    async def _send_items(self, items) -> None:
        listened = await groups_listened(self.layer, {g for _, groups in items for g in groups})
        for message, groups in items:
            if listened is not None:
                groups = [g for g in groups if g in listened]
            await _send_all(self.layer, message, groups)

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.idle.wait(left)
        return True


_sender: _Sender | None = None
_sender_lock = threading.Lock()


def _background_sender(layer) -> _Sender:
    global _sender
    sender = _sender
    if sender is None or sender.pid != os.getpid() or sender.layer is not layer:  # first use, after fork, new layer
        with _sender_lock:
            sender = _sender
            if sender is None or sender.pid != os.getpid() or sender.layer is not layer:
                sender = _sender = _Sender(layer)
    return sender


def publish_flush(timeout: float = 5.0) -> bool:
    """Wait until every queued message was handed to the channel layer. True if empty."""
    sender = _sender
    if sender is None or sender.pid != os.getpid():
        return True
    return sender.flush(timeout)


atexit.register(lambda: publish_flush(1.0))


def _send(event_type: str, payload: Any, groups: list[str]) -> None:
    """Deliver one committed event: queued for the background sender (network layers) or sent
    now (in-memory layer). Never raises."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": event_type, "payload": payload}
    try:
        if _background_wanted(layer):
            _background_sender(layer).put(message, groups)
        else:
            async_to_sync(_send_all)(layer, message, groups)
    except Exception:
        logger.exception("publish of %s failed", event_type)


def publish_many_on_commit(messages: Iterable[tuple[str, Any, Iterable[str]]], *, using: str | None = None) -> None:
    """Several ``(event_type, payload, groups)`` after commit, in this order, from ONE on-commit
    hook (an engine batch publishes hundreds: one hook each was measurable)."""
    items = [(event_type, payload, list(groups)) for event_type, payload, groups in messages]
    items = [item for item in items if item[2]]
    if not items:
        return

    def send_all() -> None:
        for event_type, payload, group_list in items:
            _send(event_type, payload, group_list)

    transaction.on_commit(send_all, using=using)


def publish_on_commit(event_type: str, payload: Any, *, groups: Iterable[str], using: str | None = None) -> None:
    """Send ``payload`` to ``groups`` after the current transaction commits."""
    group_list = list(groups)
    if not group_list:
        return
    transaction.on_commit(lambda: _send(event_type, payload, group_list), using=using)
