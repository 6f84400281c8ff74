"""WebSocket metrics: open connections go up and back down, pushed messages are counted, a
slow consumer's drop is counted by reason."""
from __future__ import annotations

import asyncio
import json

import pytest

from kk99 import metrics
from tests.streams.helpers import connect

pytestmark = pytest.mark.django_db


def _connections() -> float:
    return metrics.WS_CONNECTIONS._value.get()


def test_connections_gauge_and_message_counter_follow_a_websocket(market):
    async def scenario():
        open_before, sent_before = _connections(), metrics.WS_MESSAGES._value.get()
        comm = await connect("/ws/btcusdt@trade")
        assert _connections() == open_before + 1
        await comm.send_to(text_data=json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        await comm.receive_from(timeout=2)
        assert metrics.WS_MESSAGES._value.get() >= sent_before + 1
        await comm.disconnect()
        for _ in range(50):
            if _connections() == open_before:
                break
            await asyncio.sleep(0.02)
        assert _connections() == open_before

    asyncio.run(scenario())


def test_a_slow_consumer_drop_is_counted():
    from trading.streams.base import RouterConsumer

    async def scenario():
        consumer = RouterConsumer.__new__(RouterConsumer)
        closed = []

        async def close(code=None):
            closed.append(code)

        consumer.close = close
        consumer.outbox = type("Box", (), {"pending": 64})()
        before = metrics.WS_DROPS.labels(reason="slow_consumer")._value.get()
        consumer._slow()
        await asyncio.sleep(0)
        assert metrics.WS_DROPS.labels(reason="slow_consumer")._value.get() == before + 1
        assert closed == [1013]

    asyncio.run(scenario())
