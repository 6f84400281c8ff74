"""Wake-ups between the order requests and the engine, both directions after COMMIT.

Request → engine (:func:`engine_wake_on_commit`)
    After the order's (or cancel's) transaction commits, ``NOTIFY kk99_engine, '<symbol>'`` —
    once per symbol per transaction, and sent by a per-process sender thread on its own
    connection (``synchronous_commit = off``), so the request does not wait for it and the
    wake-ups of concurrent requests coalesce. A NOTIFY inside the order transaction made
    PostgreSQL take its global notify lock at every order's commit and hold it across the
    commit's WAL flush: all order commits were serialised. A wake-up cannot be lost for good:
    if the process dies between the commit and the NOTIFY, the engine still finds the order by
    state at its next idle check (ENGINE_IDLE_WAIT_SECONDS).

Engine → request (:func:`orders_done_on_commit`, :class:`OrderWaiter`)
    After a batch commits, the engine PUBLISHes the ids of the orders it changed on the Redis
    channel ``kk99:orders:<symbol>``. One dispatcher thread per web process subscribes to all
    of them and sets the event of every waiting request whose order is named. A waiter
    registers BEFORE it reads the order, so a batch that commits between the read and the wait
    still wakes it; it also re-reads at least every WAIT_SLICE_SECONDS, so a lost message (Redis
    restart) costs latency, never an answer. Without Redis (the SQLite demo) waiters poll.

    A batch of at most WAITER_STATE_MAX_ORDERS changed orders also carries, for each order it
    ran for the first time, the engine-owned fields as committed and the order's taker fills
    (JSON ``{"ids": […], "s": {id: state}}``; a bare ``1,2,3`` is ids only). A waiter that had
    read its order still PENDING_NEW builds the answer from that (:func:`order_with_engine_state`)
    instead of re-reading the order and its fills: the two queries after the wake-up are gone.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import os
import threading
import time
from collections import defaultdict, deque
from decimal import Decimal

import redis
from django.conf import settings
from django.db import connection, transaction
from psycopg import sql

from trading.engine.sql import pg_connect

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "kk99_engine"
ORDERS_CHANNEL_PREFIX = "kk99:orders:"
WAIT_SLICE_SECONDS = 0.25
RECENT_SECONDS = 2.0  # how long the dispatcher remembers an order it was told about
WAITER_STATE_MAX_ORDERS = 16  # batches up to this many changed orders carry the waiters' answers
IDLE_CLOSE_SECONDS = 1.0  # the wake-up sender closes its connection after this long without work


def orders_channel(symbol: str) -> str:
    return f"{ORDERS_CHANNEL_PREFIX}{symbol.upper()}"


# --- request → engine -----------------------------------------------------------------------


def engine_wake_on_commit(symbol: str) -> None:
    """Wake the engine owning ``symbol`` once the current transaction commits (at once when
    there is none). Several calls in one transaction make one wake-up; a rollback makes none."""
    if connection.vendor != "postgresql":
        return  # the SQLite engine polls
    if not connection.in_atomic_block:
        _notifier().wake(symbol)
        return
    if any(getattr(func, "kk99_wake", None) == symbol for _, func, *_ in connection.run_on_commit):
        return

    def send() -> None:
        _notifier().wake(symbol)

    send.kk99_wake = symbol
    transaction.on_commit(send)


class _Notifier:
    """One daemon thread per process with its own autocommit connection
    (``synchronous_commit = off``) sends the NOTIFYs: the request never waits for them, and
    wake-ups asked for while one is being sent are coalesced into the next."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: set[str] = set()
        self.event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="kk99-engine-wakeups", daemon=True)
        self.thread.start()

    def wake(self, symbol: str) -> None:
        with self.lock:
            self.pending.add(symbol)
        self.event.set()

    def _run(self) -> None:
        conn = None
        while True:
            if not self.event.wait(IDLE_CLOSE_SECONDS):
                if conn is not None:
                    conn.close()  # idle: give the connection back (re-opened on the next wake-up)
                    conn = None
                continue
            self.event.clear()
            with self.lock:
                symbols, self.pending = self.pending, set()
            try:
                if conn is None or conn.closed:
                    conn = pg_connect(application_name=f"kk99-wakeups {os.getpid()}")
                    conn.execute("SET synchronous_commit = off")
                for symbol in sorted(symbols):
                    conn.execute(sql.SQL("NOTIFY {}, {}").format(sql.Identifier(NOTIFY_CHANNEL), sql.Literal(symbol)))
            except Exception:  # the engine's idle check finds the orders anyway
                logger.exception("engine wake-up for %s failed", sorted(symbols))
                conn = None
                time.sleep(0.2)


_notifiers: dict[int, _Notifier] = {}
_notifiers_lock = threading.Lock()


def _notifier() -> _Notifier:
    pid = os.getpid()
    n = _notifiers.get(pid)
    if n is None:
        with _notifiers_lock:
            n = _notifiers.get(pid)
            if n is None:
                n = _notifiers[pid] = _Notifier()
    return n


# --- engine → request -----------------------------------------------------------------------

_redis_clients: dict[int, object] = {}


def _redis():
    """This process's Redis client (None without REDIS_URL)."""
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        return None
    client = _redis_clients.get(os.getpid())
    if client is None:
        client = _redis_clients[os.getpid()] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    return client


# The engine-owned Order fields a waiter's answer needs, in the order of an encoded state;
# then the taker fills [trade_id, price, qty, taker_fee, taker_fee_asset_id].
_STATE_FIELDS = ("status", "executed_qty", "cumulative_quote_qty", "prevented_qty", "held_remaining", "engine_seq",
                 "reject_reason", "updated_at", "working_at", "triggered_at")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO = dt.timedelta(microseconds=1)


def engine_state_encode(order, fills: list[list]) -> list:
    """One order's committed engine state as JSON-able values (exact: decimals as strings,
    times as integer microseconds)."""
    out: list = []
    for name in _STATE_FIELDS:
        v = getattr(order, name)
        if isinstance(v, Decimal):
            v = str(v)
        elif isinstance(v, dt.datetime):
            v = (v - _EPOCH) // _MICRO
        out.append(v)
    out.append(fills)
    return out


def order_with_engine_state(order, state: list):
    """A copy of ``order`` (read while still PENDING_NEW) with the engine state a wake-up
    carried: the same values a re-read would return (decimals at the columns' scale), and
    ``engine_taker_fills`` (unsaved Trades: trade_id, price, qty, taker_fee,
    taker_fee_asset_id) for :func:`trading.selectors.order_taker_fills`."""
    from trading.models import Order, Trade  # the models import the engine's units

    new = copy.copy(order)  # Django copies the instance state and the related-object cache
    for name, v in zip(_STATE_FIELDS, state):
        field = Order._meta.get_field(name)
        if v is not None and name in ("updated_at", "working_at", "triggered_at"):
            v = _EPOCH + v * _MICRO
        elif v is not None and field.get_internal_type() == "DecimalField":
            v = Decimal(v).quantize(Decimal(1).scaleb(-field.decimal_places))
        setattr(new, field.attname, v)
    tq = {n: Decimal(1).scaleb(-Trade._meta.get_field(n).decimal_places) for n in ("price", "qty", "taker_fee")}
    new.engine_taker_fills = [
        Trade(market_id=order.market_id, trade_id=tid, price=Decimal(p).quantize(tq["price"]), qty=Decimal(q).quantize(tq["qty"]),
              taker_order_id=order.pk, taker_fee=Decimal(fee).quantize(tq["taker_fee"]), taker_fee_asset_id=asset_id)
        for tid, p, q, fee, asset_id in state[len(_STATE_FIELDS)]
    ]
    return new


def orders_done_on_commit(symbol: str, order_ids: list[int], states: dict[int, list] | None = None) -> None:
    """After the engine's batch commits: name the orders it changed to the waiting requests,
    with ``states`` (:func:`engine_state_encode`, by order id) for those that have one."""
    if not order_ids or _redis() is None:
        return
    payload = json.dumps({"ids": order_ids, "s": states}, separators=(",", ":")) if states else ",".join(map(str, order_ids))

    def send() -> None:
        try:
            _redis().publish(orders_channel(symbol), payload)
        except Exception:  # after commit: waiters re-read every WAIT_SLICE_SECONDS
            logger.exception("order wake-up publish for %s failed", symbol)

    transaction.on_commit(send)


class _Wake(threading.Event):
    """A waiter's event, and the engine state the message that set it carried (or None)."""

    state: list | None = None


class _Dispatcher:
    """One thread per process: a pattern subscription to every market's orders channel; wakes
    the registered waiters of each named order."""

    def __init__(self, client, *, start: bool = True) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.waiters: dict[int, list[threading.Event]] = defaultdict(list)
        # The orders named in the last RECENT_SECONDS (id → the state carried, or None), so a
        # waiter that registers just after its order's batch was announced still gets it.
        self.recent: dict[int, list | None] = {}
        self.recent_order: deque[tuple[float, int]] = deque()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="kk99-order-wakeups", daemon=True)
        if start:  # tests drive _wake by hand
            self.thread.start()

    def register(self, order_id: int) -> _Wake:
        """A waiter's event for ``order_id``; already set (with the state it carried) when the
        order was named within the last RECENT_SECONDS."""
        event = _Wake()
        with self.lock:
            self.waiters[order_id].append(event)
            if order_id in self.recent:
                event.state = self.recent[order_id]
                event.set()
        return event

    def unregister(self, order_id: int, event: threading.Event) -> None:
        with self.lock:
            events = self.waiters.get(order_id)
            if events and event in events:
                events.remove(event)
                if not events:
                    del self.waiters[order_id]

    def _wake(self, data: bytes) -> None:
        if data[:1] == b"{":
            message = json.loads(data)
            ids, states = message["ids"], message.get("s") or {}
        else:
            ids, states = [int(raw) for raw in data.split(b",")], {}
        now = time.monotonic()
        with self.lock:
            recent, order = self.recent, self.recent_order
            while order and order[0][0] < now - RECENT_SECONDS:
                recent.pop(order.popleft()[1], None)
            for oid in ids:
                state = states.get(str(oid))
                recent[oid] = state
                order.append((now, oid))
                for event in self.waiters.get(oid, ()):
                    event.state = state
                    event.set()

    def _run(self) -> None:
        while True:
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(f"{ORDERS_CHANNEL_PREFIX}*")
                self.ready.set()
                for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        self._wake(message["data"])
            except Exception:  # reconnect; waiters re-read meanwhile
                logger.warning("order wake-up subscription lost; reconnecting", exc_info=True)
                self.ready.clear()
                time.sleep(0.5)


_dispatchers: dict[int, _Dispatcher] = {}
_dispatchers_lock = threading.Lock()


def _dispatcher() -> _Dispatcher | None:
    client = _redis()
    if client is None:
        return None
    pid = os.getpid()
    d = _dispatchers.get(pid)
    if d is None:
        with _dispatchers_lock:
            d = _dispatchers.get(pid)
            if d is None:
                d = _dispatchers[pid] = _Dispatcher(client)
                d.ready.wait(1.0)  # the first waiter must not miss a batch committed right now
    return d


class OrderWaiter:
    """``with OrderWaiter(order_id) as w: … read …; w.wait(seconds)``. Registered on enter
    (before the caller's first read); ``wait`` returns when the engine named the order, after
    WAIT_SLICE_SECONDS at most (then the caller re-reads), or — without Redis — after a short,
    growing poll delay."""

    def __init__(self, order_id: int) -> None:
        self.order_id = order_id
        self.dispatcher = _dispatcher()
        self.event: _Wake | None = None
        self.delay = 0.002

    def __enter__(self) -> OrderWaiter:
        if self.dispatcher is not None:
            self.event = self.dispatcher.register(self.order_id)
        return self

    def __exit__(self, *exc) -> None:
        if self.event is not None:
            self.dispatcher.unregister(self.order_id, self.event)

    def wait(self, seconds: float) -> list | None:
        """Returns the engine state the wake-up carried for this order, if any (else None:
        re-read the order)."""
        if self.event is None or not self.dispatcher.ready.is_set():
            time.sleep(max(0.0, min(seconds, self.delay)))
            self.delay = min(self.delay * 2, 0.05)
            return None
        self.event.wait(max(0.0, min(seconds, WAIT_SLICE_SECONDS)))
        with self.dispatcher.lock:
            state, self.event.state = self.event.state, None
            self.event.clear()
        return state
