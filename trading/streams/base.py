"""The consumers' common base: a bounded outbox (slow consumers are closed, never waited
for) and tolerance of event types a stream does not carry."""
from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.sessions import InstanceSessionWrapper

from kk99 import metrics
from trading.errors import TradingError
from trading.selectors import market_resolve
from trading.streams.feed import Outbox

logger = logging.getLogger(__name__)

UI_OUTBOX_LIMIT = 64
BINANCE_OUTBOX_LIMIT = 1024
HEARTBEAT_SECONDS = 5.0
PRIVATE_COALESCE_SECONDS = 0.15
MAX_STREAMS_PER_CONNECTION = 1024
MAX_INCOMING_PER_SECOND = 10
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY = 1008
CLOSE_NOT_FOUND = 4404
MARKET_CACHE_SECONDS = 10.0
# A channel-layer alias that is not configured: ``get_channel_layer`` returns None, so
# Channels creates no layer channel and no layer-receiving task for the connection. For
# consumers fed only by the per-process market feeds (public streams): less memory per
# connection, no layer traffic.
NO_CHANNEL_LAYER = "kk99.no-channel-layer"


def server_send(send):
    """The ASGI server's own ``send`` under Channels' session wrappers.

    ``InstanceSessionWrapper.send`` acts only on ``http.response.start`` (session save and
    cookie) and passes ``websocket.send`` through unchanged — yet every call evaluates the
    lazy session (``modified``, ``is_empty``): about a fifth of the fan-out's Python time with
    1,000 subscribers (py-spy, docs/benchmarks.md). Data frames therefore skip the wrappers;
    accept and close still go through them. Anything else is returned unchanged."""
    while isinstance(getattr(send, "__self__", None), InstanceSessionWrapper):
        send = send.__self__.real_send
    return send


class RouterConsumer(AsyncWebsocketConsumer):
    """Base: a bounded outbox (slow consumers are closed), unknown event types ignored."""

    outbox_limit = UI_OUTBOX_LIMIT

    async def __call__(self, scope, receive, send):
        if get_channel_layer(self.channel_layer_alias) is not None:
            return await super().__call__(scope, receive, send)
        # No channel layer: read the client's messages in this task. (Channels would run a
        # receiving task plus ``asyncio.wait`` bookkeeping per connection even for one source.)
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message):
        # Channels' dispatch also runs ``aclose_old_connections`` (a thread hop) before every
        # handler, the connect included; our handlers touch the database only through
        # ``database_sync_to_async``, which closes old connections itself — so the hop is
        # skipped (handshake rate of the 10,000-connection benchmark).
        kind = message.get("type", "")
        handler = None if kind.startswith("_") else getattr(self, kind.replace(".", "_"), None)
        if handler is not None:
            await handler(message)
        # else: an event type this stream does not carry (new publishers must not crash us)

    def _outbox_start(self, *, run: bool = True) -> None:
        """Create the outbox; ``run=False`` queues without sending until ``outbox.start()``
        (used to subscribe before accepting, so the first frames are already live)."""
        self.closing = False
        self._frame_send = server_send(self.base_send)
        self.outbox = Outbox(self._write, limit=self.outbox_limit, on_overflow=self._slow)
        if not getattr(self, "_ws_counted", False):
            self._ws_counted = True
            metrics.WS_CONNECTIONS.inc()
        if run:
            self.outbox.start()

    def _slow(self) -> None:
        logger.info("%s: dropping a slow consumer (%d queued)", type(self).__name__, self.outbox.pending)
        self.closing = True
        metrics.WS_DROPS.labels(reason="slow_consumer").inc()
        asyncio.get_running_loop().create_task(self.close(code=CLOSE_TRY_AGAIN_LATER))

    async def _write(self, item) -> None:
        if isinstance(item, str):
            await self._frame_send({"type": "websocket.send", "text": item})

    async def _outbox_stop(self) -> None:
        outbox = getattr(self, "outbox", None)
        if outbox is not None:
            if getattr(self, "_ws_counted", False):
                self._ws_counted = False
                metrics.WS_CONNECTIONS.dec()
            await outbox.stop()




@database_sync_to_async
def _market_load(symbol: str):
    try:
        return market_resolve(symbol)
    except TradingError:
        return None


_markets: dict[str, tuple[float, object]] = {}


async def market_or_none(symbol: str):
    """The market (with its assets) or None. Found markets are kept ``MARKET_CACHE_SECONDS``
    per process: a burst of connections (10,000 reconnecting clients) then costs one query,
    not one database round trip each."""
    symbol = str(symbol).upper()
    now = time.monotonic()
    hit = _markets.get(symbol)
    if hit is not None and hit[0] > now:
        return hit[1]
    market = await _market_load(symbol)
    if market is not None:
        _markets[symbol] = (now + MARKET_CACHE_SECONDS, market)
    return market


def market_cache_clear() -> None:
    _markets.clear()
