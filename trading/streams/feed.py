"""One market feed per market per server process: the fan-out point of the public streams.

Why a feed rather than every connection joining the channel-layer group: with 1,000 browser
tabs on one market, a group of 1,000 channels costs 1,000 layer messages per event (1,000
Redis pushes with channels_redis) and 1,000 renders of the same HTML. A feed is the only
member of ``market_group(symbol)`` in its process; it receives each event once, checks the
depth sequence, keeps the book, recent trades, live candles and the 24h ticker, and hands
the *same* event object to every local connection, which formats it at most once
(:meth:`FeedEvent.cached`).

Guarantees:

* **Sequenced depth.** Diffs are applied only in ``update id`` order. A missing id (an event
  lost between the engine's commit and its publish) triggers a resync from the committed
  snapshot, and the feed emits the *net* change old book → new book as one diff covering the
  missing ids, so ``U``/``u`` stay contiguous for Binance clients and browsers always render a
  whole, current book.
* **Coalescing.** Browsers get at most one ``tick`` per ``TICK_SECONDS`` (100 ms → ≤ 10 book
  updates per second); Binance ``@depth@100ms`` / ``@depth`` diffs are merged per 100 ms / 1 s
  window.
* **Slow consumers are dropped, never waited for.** A connection that cannot keep up fills
  its own bounded :class:`Outbox` and is closed (code 1013, "try again later": a browser
  reconnects and receives a fresh snapshot); the feed never awaits a connection.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime, UTC
from decimal import Decimal
from typing import Any, Protocol
from collections.abc import Callable

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from kk99.metrics import WS_MESSAGES
from kk99.publish import market_group
from marketdata.intervals import interval_get, to_ms
from trading.selectors import depth_snapshot, market_get, trade_list_recent
from trading.streams.book import Gap, LocalBook
from trading.streams.stats import Candle, Ticker, candle_current, candle_new, ticker_24h

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.1
SLOW_TICKS = 10  # 1 s cadence = 10 ticks
RECENT_TRADES = 60
TICKER_REFRESH_SECONDS = 30.0  # re-read the rolling 24h window from the database
GROUP_REFRESH_SECONDS = 3600.0  # re-join the group well before the layer's group expiry
STOP_GRACE_SECONDS = 2.0  # keep an idle feed briefly: reconnecting tabs find it warm
BOOK_LEVELS_KEPT = 50  # levels per side carried on every tick (UI up to UI_BOOK_DEPTHS' largest + partial depth)
RESYNC_ATTEMPTS = 6


def now_ms() -> int:
    return int(time.time() * 1000)


class FeedEvent:
    """One event handed to every subscriber. ``cached(key, fn)`` computes a formatting of it
    once for all connections (a rendered fragment, a JSON text)."""

    __slots__ = ("kind", "data", "_memo")

    def __init__(self, kind: str, data: Any) -> None:
        self.kind = kind
        self.data = data
        self._memo: dict[str, Any] = {}

    def cached(self, key: str, fn: Callable[[], Any]) -> Any:
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = fn()
            return value


class Subscriber(Protocol):
    def deliver(self, feed: MarketFeed, event: FeedEvent) -> None:
        """Called synchronously by the feed; must not block (enqueue and return)."""


def _send_failed(exc: Exception) -> None:
    if isinstance(exc, OSError):  # the peer went away (uvicorn: ClientDisconnected); its disconnect follows
        logger.debug("stream send to a closed connection: %r", exc)
    else:
        logger.error("stream send failed", exc_info=exc)


class _Suspended:
    """Await a coroutine that was started by hand (``coro.send(None)``) and suspended on
    ``waiting``: the rest of it runs inside whichever task awaits this (the outbox's drain
    task), exactly as if that task had started it."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro, waiting) -> None:
        self.coro, self.waiting = coro, waiting

    def __await__(self):
        coro, waiting = self.coro, self.waiting
        while True:
            try:
                sent = yield waiting  # the future the coroutine waits on, handed to our task
            except BaseException as exc:  # the task threw (cancellation): forward it
                try:
                    waiting = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class Outbox:
    """A connection's bounded send queue.

    ``put`` never blocks: when ``limit`` messages are waiting the connection is too slow,
    ``on_overflow`` is called once and everything after is discarded.

    Fast path (1,000 subscribers × every event): while nothing is waiting, ``put`` runs the
    send coroutine *synchronously*. With an ASGI server that blocks a send only when the
    peer's socket buffer is full (uvicorn), the frame reaches the socket inside the feed's
    fan-out loop: no task switch per connection, and an idle connection owns neither a queue
    nor a task (memory per connection). If a send does suspend (back-pressure from a slow
    peer), a drain task is started for it; later messages wait behind it in order, and the
    task ends when they are all sent."""

    __slots__ = ("_send", "_limit", "_on_overflow", "overflowed", "_pending", "_task", "_started", "_stopped")

    def __init__(self, send: Callable[[Any], Any], *, limit: int, on_overflow: Callable[[], Any]) -> None:
        self._send = send
        self._limit = limit
        self._on_overflow = on_overflow
        self.overflowed = False
        self._pending: deque | None = None  # messages behind a suspended send (or before start)
        self._task: asyncio.Task | None = None
        self._started = False
        self._stopped = False

    def start(self) -> None:
        self._started = True
        if self._pending and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def put(self, item: Any) -> bool:
        if self.overflowed or self._stopped:
            return False
        WS_MESSAGES.inc()
        if self._pending is None and self._started:
            coro = self._send(item)
            try:
                waiting = coro.send(None)
            except StopIteration:
                return True
            except Exception as exc:  # one bad message must not kill the connection's writer
                _send_failed(exc)
                return True
            self._pending = deque([_Suspended(coro, waiting)])
            self._task = asyncio.get_running_loop().create_task(self._drain())
            return True
        if self._pending is None:
            self._pending = deque()
        if len(self._pending) >= self._limit:
            self.overflowed = True
            self._on_overflow()
            return False
        self._pending.append(item)
        return True

    @property
    def pending(self) -> int:
        return len(self._pending) if self._pending else 0

    async def _drain(self) -> None:
        pending = self._pending
        try:
            while pending and not self.overflowed:
                item = pending[0]  # stays queued while it is sent: put() keeps the order
                try:
                    await (item if isinstance(item, _Suspended) else self._send(item))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    _send_failed(exc)
                pending.popleft()
        finally:
            if self._pending is pending and not pending:
                self._pending = None
            self._task = None

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for item in self._pending or ():
            if isinstance(item, _Suspended):
                item.coro.close()  # a send that never finished: end it quietly
        self._pending = None


class _DiffWindow:
    """Depth diffs merged over one window (absolute levels: the last value of a price wins)."""

    def __init__(self) -> None:
        self.first = 0
        self.last = 0
        self.bids: dict[Decimal, list[str]] = {}
        self.asks: dict[Decimal, list[str]] = {}

    def add(self, first: int, last: int, bids, asks) -> None:
        if not self.first:
            self.first = first
        self.last = last
        for side, rows in ((self.bids, bids), (self.asks, asks)):
            for price, qty in rows:
                side[Decimal(str(price))] = [str(price), str(qty)]

    def take(self) -> dict | None:
        if not self.first:
            return None
        out = {
            "U": self.first,
            "u": self.last,
            "b": [v for _, v in sorted(self.bids.items(), reverse=True)],
            "a": [v for _, v in sorted(self.asks.items())],
        }
        self.__init__()
        return out


def public_trade(t: dict) -> dict:
    """A trade as the public may see it: no user ids, no fees."""
    return {
        "symbol": t["symbol"], "trade_id": t["trade_id"], "price": t["price"], "qty": t["qty"],
        "quote_qty": t.get("quote_qty"), "is_buyer_maker": t["is_buyer_maker"], "time": t["time"],
        "taker_order_id": t.get("taker_order_id"),
    }


@database_sync_to_async
def _load_market(symbol: str):
    return market_get(symbol=symbol)


@database_sync_to_async
def _load_snapshot(market) -> dict:
    return depth_snapshot(market=market)


@database_sync_to_async
def _load_recent_trades(market) -> list[dict]:
    return [
        {"symbol": market.symbol, "trade_id": t.trade_id, "price": str(t.price), "qty": str(t.qty), "quote_qty": str(t.quote_qty),
         "is_buyer_maker": t.is_buyer_maker, "time": int(t.created_at.timestamp() * 1000), "taker_order_id": t.taker_order_id}
        for t in trade_list_recent(market=market, limit=RECENT_TRADES)
    ]


@database_sync_to_async
def _load_ticker(market) -> Ticker:
    return ticker_24h(market=market)


@database_sync_to_async
def _load_candle(market, interval: str) -> Candle | None:
    return candle_current(market=market, interval=interval)


class MarketFeed:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol.upper()
        self.loop = asyncio.get_running_loop()
        self.subscribers: set[Subscriber] = set()
        self.market = None
        self.book = LocalBook()
        self.recent_trades: deque[dict] = deque(maxlen=RECENT_TRADES)
        self.last_trade_id = 0
        self.ticker: Ticker | None = None
        self.candles: dict[str, Candle | None] = {}
        self.ready = asyncio.Event()
        self.failed: BaseException | None = None
        self.resyncs = 0
        self._pending: list[dict] = []
        self._live = False
        self._w100 = _DiffWindow()
        self._w1000 = _DiffWindow()
        self._book_dirty = True
        self._book_dirty_slow = True
        self._ticker_dirty = False
        self._new_trades: list[dict] = []
        self._tasks: list[asyncio.Task] = []
        self._channel: str | None = None
        self._stop_handle: asyncio.TimerHandle | None = None
        self._stopped = False

    # --- life ----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            layer = get_channel_layer()
            self._layer = layer
            self._channel = await layer.new_channel(prefix=f"feed.{self.symbol}.")
            await layer.group_add(market_group(self.symbol), self._channel)
            self._tasks.append(self.loop.create_task(self._read()))
            self.market = await _load_market(self.symbol)
            await self._load_book()
            for t in await _load_recent_trades(self.market):
                self.recent_trades.append(t)
            self.last_trade_id = self.recent_trades[-1]["trade_id"] if self.recent_trades else 0
            self.ticker = await _load_ticker(self.market)
            await self._go_live()
            self._tasks.append(self.loop.create_task(self._tick_loop()))
        except BaseException as exc:
            self.failed = exc
            raise
        finally:
            self.ready.set()

    async def stop(self) -> None:
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        if self._channel:
            try:
                await self._layer.group_discard(market_group(self.symbol), self._channel)
            except Exception:
                pass

    async def track_interval(self, interval: str) -> None:
        """Keep the live candle of ``interval`` (a kline subscriber needs it)."""
        if interval not in self.candles:
            self.candles[interval] = await _load_candle(self.market, interval)

    # --- input ---------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            message = await self._layer.receive(self._channel)
            try:
                if not self._live:
                    self._pending.append(message)
                    continue
                await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:  # a malformed event must not stop the market's feed
                logger.exception("%s feed: event %s failed", self.symbol, message.get("type"))

    async def _go_live(self) -> None:
        """Apply what arrived while loading, in order; then let the reader dispatch directly.
        (No await between the last check and the flag: nothing can slip in between.)"""
        while self._pending:
            await self._dispatch(self._pending.pop(0))
        self._live = True

    async def _dispatch(self, message: dict) -> None:
        kind = message.get("type")
        payload = message.get("payload") or {}
        if kind == "depth.diff":
            await self._on_diff(payload)
        elif kind == "trade.batch":
            self._on_trades(payload.get("trades") or [])
        elif kind == "market.status":  # a volatility halt / reopening (docs/halts.md)
            self._emit(FeedEvent("status", payload))

    async def _load_book(self) -> LocalBook:
        snapshot = await _load_snapshot(self.market)
        book = LocalBook()
        book.load(snapshot)
        self.book = book
        return book

    async def _on_diff(self, diff: dict) -> None:
        before_best = self.book.best()
        try:
            applied = self.book.apply(diff)
        except Gap as gap:
            logger.warning("%s feed: depth gap (%s); resyncing from the snapshot", self.symbol, gap)
            await self._resync(diff)
            return
        if applied:
            self._record_diff(int(diff["first_update_id"]), int(diff["last_update_id"]), diff.get("bids") or [], diff.get("asks") or [], before_best)

    async def _resync(self, diff: dict) -> None:
        """Replace the book by the committed snapshot and publish the net change as one diff
        covering every missing update id."""
        self.resyncs += 1
        old = self.book
        first, last = int(diff["first_update_id"]), int(diff["last_update_id"])
        new = old
        for attempt in range(RESYNC_ATTEMPTS):
            snapshot = await _load_snapshot(self.market)
            new = LocalBook()
            new.load(snapshot)
            if new.last_update_id >= last:
                break
            if new.last_update_id >= first - 1:
                new.apply(diff)
                break
            await asyncio.sleep(0.02 * (attempt + 1))  # the snapshot is written just after the publish
        if new.last_update_id <= old.last_update_id:
            return  # nothing newer to show yet; the next diff will try again
        before_best = old.best()
        bids, asks = old.changes_to(new)
        self.book = new
        self._record_diff(old.last_update_id + 1, new.last_update_id, bids, asks, before_best)

    def _record_diff(self, first: int, last: int, bids, asks, before_best) -> None:
        self._w100.add(first, last, bids, asks)
        self._w1000.add(first, last, bids, asks)
        self._book_dirty = self._book_dirty_slow = True
        best = self.book.best()
        if best != before_best:
            self._emit(FeedEvent("bookTicker", {"u": last, "bid": best[0], "ask": best[1]}))

    def _on_trades(self, trades: list[dict]) -> None:
        public = [public_trade(t) for t in trades if t.get("trade_id", 0) > self.last_trade_id]
        if not public:
            return
        if self.last_trade_id and public[0]["trade_id"] != self.last_trade_id + 1:
            logger.warning("%s feed: trade ids jump %s → %s; reloading recent trades", self.symbol, self.last_trade_id, public[0]["trade_id"])
            self.loop.create_task(self._reload_trades())
        self.last_trade_id = public[-1]["trade_id"]
        self.recent_trades.extend(public)
        self._new_trades.extend(public)
        for t in public:
            price, qty = Decimal(t["price"]), Decimal(t["qty"])
            self._ticker_add(price, qty, Decimal(t["quote_qty"] or price * qty), t["trade_id"])
            for name, candle in list(self.candles.items()):
                self.candles[name] = self._candle_add(name, candle, t, price, qty)
        self._emit(FeedEvent("trades", public))
        if self.candles:
            self._emit(FeedEvent("kline", {name: c for name, c in self.candles.items() if c is not None}))

    async def _reload_trades(self) -> None:
        rows = await _load_recent_trades(self.market)
        self.recent_trades.clear()
        self.recent_trades.extend(rows)

    def _ticker_add(self, price: Decimal, qty: Decimal, quote: Decimal, trade_id: int) -> None:
        t = self.ticker
        if t is None:
            return
        if t.count == 0:
            t.open = t.high = t.low = price
            t.first_id = trade_id
        t.high, t.low, t.close, t.last_qty = max(t.high, price), min(t.low, price), price, qty
        t.volume += qty
        t.quote_volume += quote
        t.count += 1
        t.last_id = trade_id
        self._ticker_dirty = True

    def _candle_add(self, name: str, candle: Candle | None, t: dict, price: Decimal, qty: Decimal) -> Candle:
        when = datetime.fromtimestamp(t["time"] / 1000, tz=UTC)
        iv = interval_get(name)
        if candle is None or iv.floor(when) != candle.open_time:
            if candle is not None:
                self._emit(FeedEvent("kline_closed", {name: candle}))
            candle = candle_new(interval=iv, when=when, price=price)
        candle.add(price=price, qty=qty, quote=Decimal(t["quote_qty"] or price * qty), trade_id=t["trade_id"], taker_buys=not t["is_buyer_maker"])
        return candle

    # --- output --------------------------------------------------------------------------

    def _emit(self, event: FeedEvent) -> None:
        for sub in list(self.subscribers):
            try:
                sub.deliver(self, event)
            except Exception:  # one broken connection must not starve the others
                logger.exception("%s feed: deliver failed", self.symbol)

    def book_state(self, levels: int = BOOK_LEVELS_KEPT) -> dict:
        bids, asks = self.book.top_strings(levels)
        return {"last_update_id": self.book.last_update_id, "bids": bids, "asks": asks}

    async def _tick_loop(self) -> None:
        n = 0
        last_ticker_refresh = time.monotonic()
        last_group_refresh = time.monotonic()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            n += 1
            try:
                self._tick(slow=n % SLOW_TICKS == 0)
                now = time.monotonic()
                if now - last_ticker_refresh > TICKER_REFRESH_SECONDS:
                    last_ticker_refresh = now
                    self.ticker = await _load_ticker(self.market)
                    self._ticker_dirty = True
                if now - last_group_refresh > GROUP_REFRESH_SECONDS:
                    last_group_refresh = now
                    await self._layer.group_add(market_group(self.symbol), self._channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s feed: tick failed", self.symbol)

    def _tick(self, *, slow: bool) -> None:
        now = now_ms()
        diff = self._w100.take()
        if diff is not None:
            self._emit(FeedEvent("depth100", {**diff, "E": now}))
        trades, self._new_trades = self._new_trades, []
        if self._book_dirty or trades:
            book = self.book_state() if self._book_dirty else None
            self._book_dirty = False
            self._emit(FeedEvent("tick", {"book": book, "trades": trades, "E": now}))
        if not slow:
            return
        diff = self._w1000.take()
        if diff is not None:
            self._emit(FeedEvent("depth1000", {**diff, "E": now}))
        if self._book_dirty_slow:
            self._book_dirty_slow = False
            self._emit(FeedEvent("book1000", {**self.book_state(), "E": now}))
        if self._ticker_dirty and self.ticker is not None:
            self._ticker_dirty = False
            self._emit(FeedEvent("ticker", {"ticker": self.ticker, "E": now}))
        self._close_candles(now)

    def _close_candles(self, now: int) -> None:
        for name, candle in list(self.candles.items()):
            if candle is not None and to_ms(candle.close_time) < now:
                self._emit(FeedEvent("kline_closed", {name: candle}))
                self.candles[name] = None


# --- the per-process registry ------------------------------------------------------------------

_feeds: dict[str, MarketFeed] = {}
_starting: dict[str, asyncio.Future] = {}


async def feed_subscribe(symbol: str, subscriber: Subscriber) -> MarketFeed:
    """The running feed of ``symbol`` (started on first use) with ``subscriber`` added."""
    symbol = symbol.upper()
    loop = asyncio.get_running_loop()
    feed = _feeds.get(symbol)
    if feed is not None and (feed.loop is not loop or feed._stopped or feed.failed):
        _feeds.pop(symbol, None)
        feed = None
    if feed is None:
        feed = MarketFeed(symbol)
        _feeds[symbol] = feed
        try:
            await feed.start()
        except BaseException:
            _feeds.pop(symbol, None)
            await feed.stop()
            raise
    else:
        await feed.ready.wait()
        if feed.failed:
            raise RuntimeError(f"feed {symbol} failed to start") from feed.failed
    if feed._stop_handle is not None:
        feed._stop_handle.cancel()
        feed._stop_handle = None
    feed.subscribers.add(subscriber)
    return feed


def feed_unsubscribe(feed: MarketFeed, subscriber: Subscriber) -> None:
    feed.subscribers.discard(subscriber)
    if feed.subscribers or feed._stopped:
        return

    def stop_if_idle() -> None:
        feed._stop_handle = None
        if not feed.subscribers and _feeds.get(feed.symbol) is feed:
            _feeds.pop(feed.symbol, None)
            feed.loop.create_task(feed.stop())

    if STOP_GRACE_SECONDS <= 0:
        stop_if_idle()
    else:
        feed._stop_handle = feed.loop.call_later(STOP_GRACE_SECONDS, stop_if_idle)


def feed_get(symbol: str) -> MarketFeed | None:
    return _feeds.get(symbol.upper())
