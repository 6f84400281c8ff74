"""The trading page's WebSocket stream (/ws/ui/<symbol>/): snapshot on connect, sequenced and
coalesced book pushes, private fragments only for their owner, slow consumers dropped."""
from __future__ import annotations

import asyncio
import re

import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.test import Client

from kk99.routing import websocket_urlpatterns
from tests.streams.helpers import ORIGIN, connect, drain, receive_until, book_seq
from trading.streams import base, consumers, feed as feed_module
from trading.streams.feed import FeedEvent

pytestmark = pytest.mark.django_db

PATH = "/ws/ui/BTCUSDT/"


def test_connect_sends_a_whole_public_snapshot_without_private_fragments(market, exchange, alice):
    async def scenario():
        await exchange.place(alice, "BUY", "99.50", "1.5")
        await exchange.place(alice, "SELL", "100.50", "2")
        await exchange.match()
        comm = await connect(PATH)
        first = await comm.receive_from(timeout=3)
        assert book_seq(first) == 1  # one engine batch = one depth update
        assert "99.50" in first and "100.50" in first and 'id="recent-trades"' in first and 'id="market-ticker"' in first
        rest = await drain(comm, 0.3)
        assert not any('id="open-orders"' in m for m in rest)  # anonymous: nothing private
        await comm.disconnect()

    async_to_sync(scenario)()


def book_levels(message: str, side: str) -> int:
    part = message.split(f'ob-side ob-{side}', 1)[1].split("</div>\n", 1)[0] if f"ob-side ob-{side}" in message else ""
    return part.count('class="ob-row')


def test_the_page_picks_the_book_depth_over_the_socket_20_by_default_50_on_request(market, exchange, alice):
    async def scenario():
        for i in range(30):
            await exchange.place(alice, "SELL", f"{101 + i}.00", "0.1")
            await exchange.place(alice, "BUY", f"{99 - i}.00", "0.1")
        await exchange.match()
        comm = await connect(PATH)
        first = await comm.receive_from(timeout=3)
        assert 'data-depth="20"' in first and book_levels(first, "asks") == book_levels(first, "bids") == 20

        await comm.send_to(text_data='{"depth": 50}')
        deep, _ = await receive_until(comm, lambda m: 'data-depth="50"' in m)
        assert book_levels(deep, "asks") == book_levels(deep, "bids") == 30
        # best first in the markup (CSS shows the asks bottom-up, the best on the spread)
        assert deep.index("101.00") < deep.index("130.00") and deep.index("99.00") < deep.index("70.00")

        await comm.send_to(text_data='{"depth": 7}')  # not an offered depth: the default
        back, _ = await receive_until(comm, lambda m: 'data-depth="20"' in m)
        assert book_levels(back, "bids") == 20
        await comm.send_to(text_data="not json")  # ignored, the stream goes on
        await comm.send_to(text_data='{"depth": 50}')
        await receive_until(comm, lambda m: 'data-depth="50"' in m)
        await comm.disconnect()

    async_to_sync(scenario)()


def test_unknown_market_is_refused(market):
    async def scenario():
        from channels.testing import WebsocketCommunicator
        from channels.routing import URLRouter

        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/ui/NOPEUSDT/", headers=[ORIGIN])
        connected, code = await comm.connect(timeout=3)
        assert not connected and code == base.CLOSE_NOT_FOUND

    async_to_sync(scenario)()


def test_browser_streams_refuse_foreign_origins(market):
    async def scenario():
        from channels.testing import WebsocketCommunicator

        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), PATH, headers=[(b"origin", b"https://evil.example")])
        connected, _ = await comm.connect(timeout=3)
        assert not connected

    async_to_sync(scenario)()


def test_session_cookie_authenticates_and_private_events_reach_only_their_owner(market, exchange, alice, bob):
    app = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    cookies = {}
    for user in (alice, bob):
        client = Client()
        client.force_login(user)
        cookies[user.pk] = client.cookies["sessionid"].value

    async def scenario():
        from channels.testing import WebsocketCommunicator

        comms = {}
        for user in (alice, bob):
            comm = WebsocketCommunicator(app, PATH, headers=[ORIGIN, (b"cookie", f"sessionid={cookies[user.pk]}".encode())])
            assert (await comm.connect(timeout=5))[0]
            await receive_until(comm, lambda m: 'id="open-orders"' in m)  # own private snapshot
            comms[user.pk] = comm
        order = await exchange.place(alice, "BUY", "99.00", "1")
        await exchange.match()
        msg, _ = await receive_until(comms[alice.pk], lambda m: f'id="open-order-{order.pk}"' in m)
        assert 'id="trade-balances"' in msg
        bob_saw = await drain(comms[bob.pk], 0.6)
        assert not any('id="open-orders"' in m or f"open-order-{order.pk}" in m for m in bob_saw)
        assert any(book_seq(m) for m in bob_saw)  # but bob sees the public book change
        for comm in comms.values():
            await comm.disconnect()

    async_to_sync(scenario)()


def test_book_pushes_are_sequenced_and_coalesced_to_ten_per_second(market, exchange, alice):
    async def scenario():
        comm = await connect(PATH)
        await comm.receive_from(timeout=3)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(30):  # 30 engine batches, each one depth update
            await exchange.place(alice, "BUY", f"{90 + i * 0.1:.2f}", "1")
            await exchange.match()
            await asyncio.sleep(0.01)
        msgs = await drain(comm, 0.5)
        elapsed = loop.time() - start
        seqs = [book_seq(m) for m in msgs if book_seq(m)]
        assert seqs == sorted(seqs) and seqs[-1] == 30
        assert len(seqs) <= int(elapsed * 10) + 2, (len(seqs), elapsed)
        assert len(seqs) < 30  # coalesced
        await comm.disconnect()

    async_to_sync(scenario)()


def test_reconnecting_client_gets_a_fresh_snapshot(market, exchange, alice):
    async def scenario():
        comm = await connect(PATH)
        assert book_seq(await comm.receive_from(timeout=3)) == 0
        await comm.disconnect()
        await exchange.place(alice, "SELL", "101.25", "3")
        await exchange.match()
        comm = await connect(PATH)
        first = await comm.receive_from(timeout=3)
        assert book_seq(first) == 1 and "101.25" in first
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_lost_depth_event_is_repaired_from_the_snapshot(market, exchange, alice, monkeypatch):
    import kk99.publish as publish

    async def scenario():
        comm = await connect(PATH)
        await comm.receive_from(timeout=3)
        await exchange.place(alice, "BUY", "95.00", "1")
        await exchange.match()
        real = publish._send
        monkeypatch.setattr(publish, "_send", lambda kind, payload, groups: None if kind == "depth.diff" else real(kind, payload, groups))
        await exchange.place(alice, "BUY", "96.00", "1")  # its diff is "lost"
        await exchange.match()
        monkeypatch.setattr(publish, "_send", real)
        await exchange.place(alice, "BUY", "97.00", "1")
        await exchange.match()
        msg, _ = await receive_until(comm, lambda m: book_seq(m) == 3)
        assert "95.00" in msg and "96.00" in msg and "97.00" in msg
        assert feed_module.feed_get("BTCUSDT").resyncs == 1
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_slow_consumer_is_dropped_without_slowing_the_others(market, exchange, monkeypatch):
    stall = asyncio.Event

    class Stuck(consumers.MarketUiConsumer):
        outbox_limit = 4

        async def _write(self, item):
            await self._stall.wait()  # never set: this client reads nothing

        async def connect(self):
            self._stall = stall()
            await super().connect()

    from django.urls import re_path

    app = URLRouter([re_path(r"^stuck/(?P<symbol>\w+)/$", Stuck.as_asgi())] + websocket_urlpatterns)

    async def scenario():
        slow = await connect("/stuck/BTCUSDT/", app=app)
        fast = await connect(PATH, app=app)
        await fast.receive_from(timeout=3)
        feed = feed_module.feed_get("BTCUSDT")
        for i in range(10):
            feed._emit(FeedEvent("tick", {"book": feed.book_state(), "trades": [], "E": i}))
        closed = await slow.receive_output(timeout=3)
        assert closed == {"type": "websocket.close", "code": base.CLOSE_TRY_AGAIN_LATER}
        got = await drain(fast, 0.5)
        assert len([m for m in got if 'id="ob-book"' in m]) >= 5  # the others keep flowing
        await fast.disconnect()

    async_to_sync(scenario)()


def test_trades_reach_the_page_with_chart_ticks_and_no_user_ids(market, exchange, alice, bob):
    async def scenario():
        comm = await connect(PATH)
        await comm.receive_from(timeout=3)
        await exchange.place(alice, "SELL", "100.00", "1")
        await exchange.place(bob, "BUY", "100.00", "1")
        await exchange.match()
        msg, _ = await receive_until(comm, lambda m: 'id="chart-ticks"' in m)
        ticks = re.search(r'data-ticks="([^"]*)"', msg).group(1)
        assert "100.00" in ticks
        assert 'data-trade-id="1"' in msg
        assert str(alice.pk) not in re.findall(r"user_id\D+(\d+)", msg)
        await comm.disconnect()

    async_to_sync(scenario)()


def test_heartbeat_is_sent(market, monkeypatch):
    monkeypatch.setattr(consumers, "HEARTBEAT_SECONDS", 0.1)

    async def scenario():
        comm = await connect(PATH)
        await receive_until(comm, lambda m: 'id="ws-heartbeat"' in m, timeout=2)
        await comm.disconnect()

    async_to_sync(scenario)()
