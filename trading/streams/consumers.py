"""WebSocket consumers. They only route: authenticate, join groups / market feeds, format and
forward. They never write business state.

* :class:`MarketUiConsumer` — ``/ws/ui/<symbol>/``: the trading page's htmx stream
  (out-of-band fragments with stable ids);
* :class:`MarketsUiConsumer` — ``/ws/ui/markets/``: live rows of the markets list;
* :class:`BinanceStreamConsumer` — ``/ws/<stream>`` and ``/stream?streams=a/b``;
* :class:`WsApiConsumer` — ``/ws-api/v3``: ``ping``, ``time``, the user data stream.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from accounts.sockets import CLOSE_AUTH_REVOKED, socket_should_close
from kk99.inputguard import InputRefused, check_ws_message
from kk99.publish import user_group
from trading.selectors import market_list
from trading.streams import binance as bn
from trading.streams import fragments as fr
from trading.streams.base import (
    BINANCE_OUTBOX_LIMIT, CLOSE_NOT_FOUND, CLOSE_POLICY, HEARTBEAT_SECONDS, MAX_INCOMING_PER_SECOND,
    MAX_STREAMS_PER_CONNECTION, NO_CHANNEL_LAYER, PRIVATE_COALESCE_SECONDS, RouterConsumer, market_or_none as _market_or_none,
)
from trading.streams.feed import FeedEvent, MarketFeed, feed_subscribe, feed_unsubscribe, now_ms
from trading.streams.userdata import ListenKeyStreamConsumer, WsApiConsumer  # noqa: F401 — routed from kk99.routing

logger = logging.getLogger(__name__)

# --- browser: the trading page ---------------------------------------------------------------


@database_sync_to_async
def _render_private(user, market) -> str:
    return fr.render_private(user=user, market=market)


class MarketUiConsumer(RouterConsumer):
    """Pushes the trading page's fragments: book (≤ 10/s), trades, chart ticks, ticker, and —
    only to the page's own user — open orders, history, fills and balances. On (re)connect
    everything is sent whole: a reconnecting page never shows a stale or gapped book."""

    async def connect(self):
        self.feed: MarketFeed | None = None
        self.private_group = None
        self._private_timer = None
        self._heartbeat = None
        self.market = await _market_or_none(self.scope["url_route"]["kwargs"]["symbol"])
        if self.market is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.mf = fr.MarketFormat.of(self.market)
        self.user = self.scope.get("user")
        self.depth = fr.book_depth(None)
        self._recent: list[float] = []
        await self.accept()
        self._outbox_start()
        if self.user is not None and self.user.is_authenticated:
            self.private_group = user_group(self.user.pk)
            await self.channel_layer.group_add(self.private_group, self.channel_name)
        self.feed = await feed_subscribe(self.market.symbol, self)
        self.outbox.put(self._snapshot())
        if self.private_group:
            self.outbox.put(await _render_private(self.user, self.market))
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def disconnect(self, code):
        if self.feed is not None:
            feed_unsubscribe(self.feed, self)
        if self.private_group:
            await self.channel_layer.group_discard(self.private_group, self.channel_name)
        for task in (self._heartbeat, self._private_timer):
            if task is not None:
                task.cancel()
        await self._outbox_stop()

    def _snapshot(self) -> str:
        feed = self.feed
        state = feed.book_state()
        last = feed.ticker.close if feed.ticker else None
        return "".join([
            fr.render_book(self.mf, state, last_price=last, rows=self.depth),
            fr.render_trades(self.mf, feed.recent_trades),
            fr.render_ticker(self.mf, feed.ticker),
            fr.render_chart_ticks([], state["last_update_id"]),
        ])

    # feed → this connection (synchronous, never blocks)
    def deliver(self, feed: MarketFeed, event: FeedEvent) -> None:
        if event.kind in ("tick", "ticker", "status"):
            self.outbox.put(event)

    async def _write(self, item) -> None:
        if isinstance(item, FeedEvent):
            # Rendered once per event and depth, shared by every connection that shows it.
            item = item.cached(f"ui:{self.depth}", lambda: self._render_event(item))
        if item:
            await self._frame_send({"type": "websocket.send", "text": item})

    def _render_event(self, event: FeedEvent) -> str:
        feed = self.feed
        if event.kind == "ticker":
            return fr.render_ticker(self.mf, event.data["ticker"])
        if event.kind == "status":
            return fr.render_halt_banner(event.data)
        parts = []
        last = feed.ticker.close if feed.ticker else None
        if event.data["book"] is not None:
            parts.append(fr.render_book(self.mf, event.data["book"], last_price=last, rows=self.depth))
        if event.data["trades"]:
            parts.append(fr.render_trades(self.mf, feed.recent_trades))
            parts.append(fr.render_chart_ticks(event.data["trades"], event.data["trades"][-1]["trade_id"]))
            parts.append(fr.render_ticker(self.mf, feed.ticker))
        return "".join(parts)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            self.outbox.put(fr.render_heartbeat(now_ms()))

    # user group → this connection (only the owner's connections join it)
    async def auth_revoked(self, event):
        """The user's credentials changed (logout of this session, password, deactivation, a
        key revoked): stop streaming private data (accounts.sockets)."""
        session = self.scope.get("session")
        if self.private_group and socket_should_close(event.get("payload") or {}, user_ids=[self.user.pk], session_key=getattr(session, "session_key", None)):
            await self.close(code=CLOSE_AUTH_REVOKED)

    async def order_update(self, event):
        self._private_changed()

    async def trade_fill(self, event):
        self._private_changed()

    async def balance_update(self, event):
        self._private_changed()

    def _private_changed(self) -> None:
        if self._private_timer is None or self._private_timer.done():
            self._private_timer = asyncio.get_running_loop().create_task(self._push_private())

    async def _push_private(self) -> None:
        await asyncio.sleep(PRIVATE_COALESCE_SECONDS)
        self.outbox.put(await _render_private(self.user, self.market))

    async def receive(self, text_data=None, bytes_data=None):
        """The page's only message: the book depth it shows, ``{"depth": 50}`` (one of
        ``UI_BOOK_DEPTHS``; anything else is ignored). Answered with the book at that depth.
        Orders go through CSRF-protected forms, never over the socket."""
        now = time.monotonic()
        self._recent = [t for t in self._recent if now - t < 1.0] + [now]
        if len(self._recent) > MAX_INCOMING_PER_SECOND:
            await self.close(code=CLOSE_POLICY)
            return
        try:
            message = check_ws_message(text_data, bytes_data)
        except (InputRefused, ValueError):
            return
        if not isinstance(message, dict) or "depth" not in message or self.feed is None:
            return
        depth = fr.book_depth(message.get("depth"))
        if depth != self.depth:
            self.depth = depth
            last = self.feed.ticker.close if self.feed.ticker else None
            self.outbox.put(fr.render_book(self.mf, self.feed.book_state(), last_price=last, rows=depth))


# --- browser: the markets list -----------------------------------------------------------------


@database_sync_to_async
def _all_markets():
    return list(market_list())


class MarketsUiConsumer(RouterConsumer):
    """Live rows of the markets list (one ``<tr id="mkt-SYMBOL">`` per ticker change)."""

    channel_layer_alias = NO_CHANNEL_LAYER  # public data only: fed by the market feeds

    async def connect(self):
        self.feeds: list[MarketFeed] = []
        await self.accept()
        self._outbox_start()
        self.markets = {m.symbol: m for m in await _all_markets()}
        for symbol in self.markets:
            self.feeds.append(await feed_subscribe(symbol, self))
        for feed in self.feeds:
            self.outbox.put(fr.render_market_row(fr.market_row(self.markets[feed.symbol], feed.ticker)))

    async def disconnect(self, code):
        for feed in getattr(self, "feeds", []):
            feed_unsubscribe(feed, self)
        await self._outbox_stop()

    def deliver(self, feed: MarketFeed, event: FeedEvent) -> None:
        if event.kind == "ticker":
            market = self.markets[feed.symbol]
            self.outbox.put(event.cached("ui-row", lambda: fr.render_market_row(fr.market_row(market, event.data["ticker"]))))


# --- Binance market streams --------------------------------------------------------------------


class BinanceStreamConsumer(RouterConsumer):
    """``/ws/<stream>`` (raw payloads) and ``/stream?streams=a/b`` (``{"stream","data"}``).
    Live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` /
    ``GET_PROPERTY`` requests are answered ``{"result": …, "id": …}``; errors
    ``{"code": …, "msg": …, "id": …}``. Keep-alive pings are sent by the ASGI server at the
    WebSocket protocol level (uvicorn and daphne: every 20 s, like Binance)."""

    outbox_limit = BINANCE_OUTBOX_LIMIT
    channel_layer_alias = NO_CHANNEL_LAYER  # public data only: fed by the market feeds

    async def connect(self):
        self.streams: dict[str, bn.StreamSpec] = {}
        self.feeds: dict[str, MarketFeed] = {}
        self.all_minis = False
        self._minis: dict[str, dict] = {}
        self._minis_task = None
        self._recent: list[float] = []
        self.combined = self.scope["url_route"]["kwargs"].get("combined", False)
        if self.combined:
            query = parse_qs(self.scope.get("query_string", b"").decode())
            names = [n for raw in query.get("streams", []) for n in raw.split("/") if n]
        else:
            names = [n for n in self.scope["url_route"]["kwargs"].get("streams", "").split("/") if n]
        self._outbox_start(run=False)
        await self._subscribe(names)  # before accepting: once connected, the streams are live
        await self.accept()
        self.outbox.start()

    async def disconnect(self, code):
        for feed in self.feeds.values():
            feed_unsubscribe(feed, self)
        self.feeds.clear()
        if self._minis_task is not None:
            self._minis_task.cancel()
        await self._outbox_stop()

    async def _subscribe(self, names: list[str]) -> list[str]:
        """Add valid stream names; returns the invalid ones."""
        bad = []
        for name in names:
            spec = bn.stream_parse(name)
            if spec is None:
                bad.append(name)
                continue
            if name in self.streams:
                continue
            if len(self.streams) >= MAX_STREAMS_PER_CONNECTION:
                bad.append(name)
                continue
            if spec.kind == "allMiniTickers":
                await self._subscribe_all_minis()
            else:
                feed = self.feeds.get(spec.symbol)
                if feed is None:
                    market = await _market_or_none(spec.symbol)
                    if market is None:
                        bad.append(name)
                        continue
                    feed = self.feeds[spec.symbol] = await feed_subscribe(spec.symbol, self)
                if spec.kind == "kline":
                    await feed.track_interval(spec.interval)
            self.streams[name] = spec
        return bad

    async def _subscribe_all_minis(self) -> None:
        self.all_minis = True
        for market in await _all_markets():
            if market.symbol not in self.feeds:
                self.feeds[market.symbol] = await feed_subscribe(market.symbol, self)
        if self._minis_task is None:
            self._minis_task = asyncio.get_running_loop().create_task(self._flush_minis())

    def _unsubscribe(self, names: list[str]) -> None:
        for name in names:
            self.streams.pop(name, None)
        if bn.ALL_MINI_TICKERS not in self.streams:
            self.all_minis = False
        wanted = {s.symbol for s in self.streams.values() if s.symbol}
        for symbol in list(self.feeds):
            if symbol not in wanted and not self.all_minis:
                feed_unsubscribe(self.feeds.pop(symbol), self)

    async def _flush_minis(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._minis and self.all_minis:
                batch, self._minis = list(self._minis.values()), {}
                self._send_payload(bn.ALL_MINI_TICKERS, batch)

    def _send_payload(self, stream: str, data) -> None:
        body = json.dumps(data, separators=(",", ":"))
        self.outbox.put(f'{{"stream":"{stream}","data":{body}}}' if self.combined else body)

    def _send_cached(self, event: FeedEvent, stream: str, key: str, build) -> None:
        body = event.cached(key, lambda: json.dumps(build(), separators=(",", ":")))
        self.outbox.put(f'{{"stream":"{stream}","data":{body}}}' if self.combined else body)

    def deliver(self, feed: MarketFeed, event: FeedEvent) -> None:  # one branch per stream kind
        kind, data = event.kind, event.data
        if kind == "ticker" and self.all_minis:
            self._minis[feed.symbol] = bn.mini_ticker_event(data["ticker"], data["E"])
        for name, spec in list(self.streams.items()):
            if spec.symbol != feed.symbol:
                continue
            sk = spec.kind
            if kind == "trades" and sk == "trade":
                now = now_ms()
                for i, t in enumerate(data):
                    self._send_cached(event, name, f"trade:{i}", lambda t=t: bn.trade_event(t, now))
            elif kind == "trades" and sk == "aggTrade":
                aggs = event.cached("aggs", lambda: bn.agg_trades(data))
                now = now_ms()
                for i, a in enumerate(aggs):
                    self._send_cached(event, name, f"agg:{i}", lambda a=a: bn.agg_trade_event(a, now))
            elif sk == "depth" and ((kind == "depth100" and spec.speed_ms == 100) or (kind == "depth1000" and spec.speed_ms == 1000)):
                self._send_cached(event, name, "depth", lambda: bn.depth_update_event(feed.symbol, data["U"], data["u"], data["b"], data["a"], data["E"]))
            elif sk == "partial" and ((kind == "tick" and data["book"] is not None and spec.speed_ms == 100) or (kind == "book1000" and spec.speed_ms == 1000)):
                book = data["book"] if kind == "tick" else data
                n = spec.levels
                self._send_cached(event, name, f"partial:{n}", lambda: bn.partial_depth_event(book["last_update_id"], book["bids"][:n], book["asks"][:n]))
            elif sk == "bookTicker" and kind == "bookTicker":
                self._send_cached(event, name, "bookTicker", lambda: bn.book_ticker_event(feed.symbol, data["u"], data["bid"], data["ask"]))
            elif sk == "miniTicker" and kind == "ticker":
                self._send_cached(event, name, "mini", lambda: bn.mini_ticker_event(data["ticker"], data["E"]))
            elif sk == "ticker" and kind == "ticker":
                bid, ask = feed.book.best()
                self._send_cached(event, name, "ticker", lambda: bn.ticker_event(data["ticker"], data["E"], bid, ask))
            elif sk == "kline" and kind in ("kline", "kline_closed") and spec.interval in data:
                closed = kind == "kline_closed"
                candle = data[spec.interval]
                self._send_cached(event, name, f"kline:{spec.interval}", lambda: bn.kline_event(feed.symbol, candle, now_ms(), closed=closed))

    async def receive(self, text_data=None, bytes_data=None):
        now = time.monotonic()
        self._recent = [t for t in self._recent if now - t < 1.0] + [now]
        if len(self._recent) > MAX_INCOMING_PER_SECOND:
            await self.close(code=CLOSE_POLICY)
            return
        try:
            check_ws_message(text_data, bytes_data)
            request = json.loads(text_data or bytes_data or b"")
        except InputRefused as exc:
            await self._reply_error(2, f"Invalid request: {exc.message}", None)
            return
        except ValueError:
            await self._reply_error(3, "Invalid JSON: expected value at line 1 column 1", None)
            return
        if not isinstance(request, dict):
            await self._reply_error(2, "Invalid request: request must be an object", None)
            return
        rid = request.get("id")
        if rid is not None and not isinstance(rid, (int, str)) or isinstance(rid, bool):
            await self._reply_error(2, "Invalid request: 'id' must be an integer, a string or null", None)
            return
        method, params = request.get("method"), request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                await self._reply_error(1, "Invalid value type: expected a list of stream names", rid)
                return
            if method == "SUBSCRIBE":
                bad = await self._subscribe(params)
                if bad:
                    await self._reply_error(2, f"Invalid request: unknown stream(s) {', '.join(bad[:5])}", rid)
                    return
            else:
                self._unsubscribe(params)
            await self._reply({"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            await self._reply({"result": list(self.streams), "id": rid})
        elif method == "SET_PROPERTY":
            if not (isinstance(params, list) and len(params) == 2 and params[0] == "combined" and isinstance(params[1], bool)):
                await self._reply_error(2, "Invalid request: SET_PROPERTY takes [\"combined\", true|false]", rid)
                return
            self.combined = params[1]
            await self._reply({"result": None, "id": rid})
        elif method == "GET_PROPERTY":
            if params != ["combined"]:
                await self._reply_error(2, "Invalid request: unknown property", rid)
                return
            await self._reply({"result": self.combined, "id": rid})
        else:
            await self._reply_error(2, f"Invalid request: unknown method {str(method)[:40]!r}", rid)

    async def _reply(self, body: dict) -> None:
        # Answers go through the outbox too, so they keep their order with the data.
        self.outbox.put(json.dumps(body, separators=(",", ":")))

    async def _reply_error(self, code: int, msg: str, rid) -> None:
        await self._reply({"code": code, "msg": msg, "id": rid})


