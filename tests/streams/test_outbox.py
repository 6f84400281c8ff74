"""The connection outbox: frames go out synchronously while nothing waits, a send that
suspends (back-pressure) keeps the order of everything behind it, a full outbox drops the
connection once; data frames skip Channels' session wrapper."""
from __future__ import annotations

import asyncio

from trading.streams.base import server_send
from trading.streams.feed import Outbox


def _run(scenario):
    return asyncio.run(scenario())


def test_put_sends_synchronously_when_nothing_is_waiting():
    async def scenario():
        sent = []

        async def send(item):
            sent.append(item)

        box = Outbox(send, limit=4, on_overflow=lambda: None)
        box.start()
        box.put("a")
        box.put("b")
        assert sent == ["a", "b"]  # no await in between: sent inside put()
        assert box.pending == 0
        await box.stop()

    _run(scenario)


def test_messages_wait_in_order_behind_a_suspended_send():
    async def scenario():
        sent, gate = [], asyncio.Event()

        async def send(item):
            if item == "slow":
                await gate.wait()
            sent.append(item)

        box = Outbox(send, limit=8, on_overflow=lambda: None)
        box.start()
        box.put("first")
        box.put("slow")
        box.put("after-1")
        box.put("after-2")
        assert sent == ["first"] and box.pending == 3
        gate.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert sent == ["first", "slow", "after-1", "after-2"]
        assert box.pending == 0
        box.put("again")  # back on the fast path
        assert sent[-1] == "again"
        await box.stop()

    _run(scenario)


def test_a_full_outbox_reports_the_slow_connection_once_and_discards_the_rest():
    async def scenario():
        overflows = []

        async def send(item):
            await asyncio.Event().wait()  # the peer never reads

        box = Outbox(send, limit=3, on_overflow=lambda: overflows.append(1))
        box.start()
        results = [box.put(i) for i in range(10)]
        assert results[:3] == [True, True, True] and not any(results[4:])
        assert overflows == [1] and box.overflowed
        await box.stop()  # the suspended send is closed quietly

    _run(scenario)


def test_messages_put_before_start_are_sent_in_order_after_start():
    async def scenario():
        sent = []

        async def send(item):
            sent.append(item)

        box = Outbox(send, limit=4, on_overflow=lambda: None)
        box.put(1)
        box.put(2)
        assert sent == []
        box.start()
        box.put(3)  # queued behind 1 and 2, not sent ahead of them
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert sent == [1, 2, 3]
        await box.stop()

    _run(scenario)


def test_data_frames_skip_the_session_wrapper():
    from channels.sessions import InstanceSessionWrapper

    async def real_send(message):
        return message

    wrapper = InstanceSessionWrapper({"type": "websocket", "cookies": {}}, real_send)
    assert server_send(wrapper.send) is real_send
    assert server_send(real_send) is real_send
