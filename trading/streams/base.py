"""The consumers' common base: a bounded outbox (slow consumers are closed, never waited
for) and tolerance of event types a stream does not carry."""
from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

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


class RouterConsumer(AsyncWebsocketConsumer):
    """Base: a bounded outbox (slow consumers are closed), unknown event types ignored."""

    outbox_limit = UI_OUTBOX_LIMIT

    async def dispatch(self, message):
        kind = message.get("type", "")
        if kind.startswith("websocket.") or hasattr(self, kind.replace(".", "_")):
            await super().dispatch(message)
        # else: an event type this stream does not carry (new publishers must not crash us)

    def _outbox_start(self, *, run: bool = True) -> None:
        """Create the outbox; ``run=False`` queues without sending until ``outbox.start()``
        (used to subscribe before accepting, so the first frames are already live)."""
        self.closing = False
        self.outbox = Outbox(self._write, limit=self.outbox_limit, on_overflow=self._slow)
        if run:
            self.outbox.start()

    def _slow(self) -> None:
        logger.info("%s: dropping a slow consumer (%d queued)", type(self).__name__, self.outbox.pending)
        self.closing = True
        asyncio.get_running_loop().create_task(self.close(code=CLOSE_TRY_AGAIN_LATER))

    async def _write(self, item) -> None:
        if isinstance(item, str):
            await self.send(text_data=item)

    async def _outbox_stop(self) -> None:
        outbox = getattr(self, "outbox", None)
        if outbox is not None:
            await outbox.stop()




@database_sync_to_async
def market_or_none(symbol: str):
    from trading.models import Market

    return Market.objects.select_related("base", "quote").filter(symbol=str(symbol).upper()).first()
