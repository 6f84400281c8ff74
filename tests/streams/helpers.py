"""Small helpers for consumer scenarios."""
from __future__ import annotations

import asyncio
import json
import re

from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from kk99.routing import websocket_urlpatterns

APP = URLRouter(websocket_urlpatterns)


ORIGIN = (b"origin", b"http://127.0.0.1")  # browser streams accept only our own origin


async def connect(path: str, user=None, app=APP, headers=None) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(app, path, headers=[ORIGIN] if headers is None else headers)
    comm.scope["user"] = user or AnonymousUser()
    comm.scope["client"] = ["127.0.0.1", 50000]
    connected, _ = await comm.connect(timeout=5)
    assert connected, path
    return comm


async def _next(comm: WebsocketCommunicator, deadline: float):
    """The next text message before ``deadline``, or None. Polls the output queue: a timed-out
    ``receive_from`` would cancel the application (asgiref's communicator does that)."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        if not comm.output_queue.empty():
            return await comm.receive_from(timeout=1)
        if comm.future.done():
            comm.future.result()
            raise AssertionError("the consumer ended")
        await asyncio.sleep(0.01)
    return None


async def receive_until(comm: WebsocketCommunicator, predicate, *, timeout: float = 3.0, parse=None) -> tuple[object, list]:
    """Receive messages until ``predicate(message)`` holds; returns (that message, all seen)."""
    seen = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        raw = await _next(comm, deadline)
        if raw is None:
            raise AssertionError(f"condition not met within {timeout}s; saw {len(seen)} messages: {[str(m)[:300] for m in seen[-5:]]}")
        msg = parse(raw) if parse else raw
        seen.append(msg)
        if predicate(msg):
            return msg, seen


async def drain(comm: WebsocketCommunicator, seconds: float = 0.3, parse=None) -> list:
    out = []
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        raw = await _next(comm, deadline)
        if raw is None:
            return out
        out.append(parse(raw) if parse else raw)


def book_seq(html: str) -> int | None:
    m = re.search(r'id="ob-book" class="ob" data-seq="(\d+)"', html)
    return int(m.group(1)) if m else None


def as_json(raw: str):
    return json.loads(raw)
