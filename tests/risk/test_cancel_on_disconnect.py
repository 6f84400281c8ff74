"""Cancel-on-disconnect for /ws-api/v3 (session.cancelOnDisconnect): when the session that
asked for it closes, every open order of the key's account is sent for cancel — and only
then, and only that account's."""
from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync

from accounts.signing import sign
from tests.streams.helpers import as_json, connect
from trading.models import Order
from trading.services import order_place
from trading.streams.userdata import signature_payload

pytestmark = pytest.mark.django_db

BUY = {"market": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100"}


@pytest.fixture(autouse=True)
def _in_memory_layer_and_shared_connection(settings, monkeypatch):
    import channels.db
    from channels.layers import channel_layers

    monkeypatch.setattr(channels.db, "close_old_connections", lambda: None)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def _signed(key: str, secret: str, **extra) -> dict:
    params = {"apiKey": key, "timestamp": int(time.time() * 1000), **extra}
    params["signature"] = sign(secret, signature_payload(params))
    return params


def _session(key: str, secret: str, *, enabled: bool | None, close: bool = True):
    async def scenario():
        comm = await connect("/ws-api/v3")
        if enabled is not None:
            extra = {} if enabled is True else {"enabled": enabled}
            await comm.send_to(text_data=json.dumps({"id": 1, "method": "session.cancelOnDisconnect", "params": _signed(key, secret, **extra)}))
            reply = as_json(await comm.receive_from(timeout=5))
            assert reply["status"] == 200 and reply["result"] == {"cancelOnDisconnect": enabled}, reply
        await comm.disconnect()

    async_to_sync(scenario)()


def _flagged(user) -> int:
    return Order.objects.filter(user=user, cancel_requested=True).count()


def test_closing_the_session_cancels_the_accounts_open_orders(alice, bob, market):
    order_place(user=alice[0], **BUY)
    order_place(user=alice[0], **BUY)
    order_place(user=bob[0], **BUY)
    _session(alice[1], alice[2], enabled=True)
    assert _flagged(alice[0]) == 2 and _flagged(bob[0]) == 0


def test_without_asking_or_after_turning_it_off_nothing_is_cancelled(alice, market):
    order_place(user=alice[0], **BUY)
    _session(alice[1], alice[2], enabled=None)
    _session(alice[1], alice[2], enabled=False)
    assert _flagged(alice[0]) == 0


def test_a_bad_signature_is_refused_and_arms_nothing(alice, market):
    order_place(user=alice[0], **BUY)

    async def scenario():
        comm = await connect("/ws-api/v3")
        params = _signed(alice[1], alice[2])
        params["signature"] = "0" * 64
        await comm.send_to(text_data=json.dumps({"id": 1, "method": "session.cancelOnDisconnect", "params": params}))
        assert as_json(await comm.receive_from(timeout=5))["error"]["code"] == -1022
        await comm.disconnect()

    async_to_sync(scenario)()
    assert _flagged(alice[0]) == 0
