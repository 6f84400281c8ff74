"""Binance's margin user-data stream: a listen key from ``/sapi/v1/userDataStream`` (cross) or
``…/isolated?symbol=`` (isolated), the stream at ``/ws/<listenKey>`` carrying that one
account's executionReports, outboundAccountPosition and margin notices, and the key's life
(reuse, keep-alive, close → listenKeyExpired)."""
from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from kk99.publish import user_group
from margin.models import BorrowCap, MarginAsset
from margin.services import margin_account_for, margin_order_place, margin_transfer
from tests.streams.conftest import layer
from tests.streams.helpers import APP, as_json, connect, drain, receive_until
from tests.streams.test_ws_api import signed as ws_signed
from trading.streams.listenkeys import listen_key_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def margin_terms(btc, usdt, market):
    for asset, ratio in ((btc, "0.9"), (usdt, "1")):
        MarginAsset.objects.create(asset=asset, collateral_ratio=D(ratio))
        BorrowCap.objects.create(asset=asset, tier=1, max_borrow=D("1000"))


@pytest.fixture
def alice_key(alice):
    key, _ = api_key_create(user=alice, label="stream", permissions=["read"])
    return key.key


def _stream(client, method: str, key: str, query: str = "", isolated: bool = False):
    path = "/sapi/v1/userDataStream" + ("/isolated" if isolated else "")
    return client.generic(method, f"{path}?{query}", HTTP_X_MBX_APIKEY=key)


def test_a_listen_key_is_reused_kept_alive_and_closed_like_binances(client, margin_terms, alice, alice_key, bob):
    first = _stream(client, "POST", alice_key)
    assert first.status_code == 200, first.content
    key = first.json()["listenKey"]
    assert len(key) == 60 and key.isalnum()
    assert _stream(client, "POST", alice_key).json() == {"listenKey": key}  # the live key, extended
    isolated = _stream(client, "POST", alice_key, "symbol=BTCUSDT", isolated=True).json()["listenKey"]
    assert isolated != key
    stream = listen_key_get(isolated)
    assert stream.user_id == alice.pk and stream.isolated_symbol == "BTCUSDT"
    assert stream.ledger_account_id == margin_account_for(alice, "BTCUSDT").account_id
    assert listen_key_get(key).ledger_account_id == margin_account_for(alice).account_id

    assert _stream(client, "PUT", alice_key, f"listenKey={key}").json() == {}
    # the cross key is not the isolated account's, nor another user's
    assert _stream(client, "PUT", alice_key, f"symbol=BTCUSDT&listenKey={key}", isolated=True).json()["code"] == -1125
    bob_key, _ = api_key_create(user=bob, label="stream", permissions=["read"])
    margin_account_for(bob)
    assert _stream(client, "DELETE", bob_key.key, f"listenKey={key}").json()["code"] == -1125
    assert _stream(client, "POST", alice_key, "symbol=NOPE", isolated=True).json()["code"] == -1121
    assert _stream(client, "PUT", alice_key).json()["code"] == -1102  # listenKey is mandatory

    assert _stream(client, "DELETE", alice_key, f"listenKey={key}").json() == {}
    assert listen_key_get(key) is None
    assert _stream(client, "PUT", alice_key, f"listenKey={key}").json()["code"] == -1125
    assert _stream(client, "POST", alice_key).json()["listenKey"] != key  # a new key after a close


def test_the_margin_stream_carries_only_its_accounts_orders_fills_and_balances(client, margin_terms, exchange, market, usdt, alice, alice_key, bob, django_capture_on_commit_callbacks):
    cross = margin_account_for(alice)
    with django_capture_on_commit_callbacks(execute=True):
        margin_transfer(user=alice, asset=usdt, amount=D("1000"), from_margin=None, to_margin=cross, idempotency_key="t-listen-1")
    key = _stream(client, "POST", alice_key).json()["listenKey"]

    def place_margin():
        with django_capture_on_commit_callbacks(execute=True):
            return margin_order_place(user=alice, margin=cross, market=market, side="BUY", type="LIMIT", quantity=D("1"), price=D("100"))

    async def scenario():
        comm = await connect(f"/ws/{key}")
        await exchange.place(alice, "BUY", "99", "1")  # a spot order: not on the margin stream
        order = await sync_to_async(place_margin)()
        new, seen = await receive_until(comm, lambda m: m.get("e") == "executionReport", parse=as_json)
        assert new["x"] == "NEW" and new["i"] == order.pk and new["S"] == "BUY" and "subscriptionId" not in new
        position, _ = await receive_until(comm, lambda m: m.get("e") == "outboundAccountPosition", parse=as_json)
        balances = {b["a"]: b for b in position["B"]}
        assert D(balances["USDT"]["l"]) > 0 and D(balances["USDT"]["f"]) + D(balances["USDT"]["l"]) == D("1000")  # the margin account's, not the spot wallet's
        await exchange.place(bob, "SELL", "100", "1")
        await exchange.match()
        trade, more = await receive_until(comm, lambda m: m.get("x") == "TRADE", parse=as_json)
        assert trade["i"] == order.pk and trade["l"] == "1.000" and trade["L"] == "100.00" and trade["m"] is True
        reports = [m for m in seen + more + await drain(comm, parse=as_json) if m.get("e") == "executionReport"]
        assert {m["i"] for m in reports} == {order.pk}
        await comm.disconnect()

    async_to_sync(scenario)()


def test_margin_call_and_liquidation_notices_reach_the_accounts_stream_only(client, margin_terms, alice, alice_key):
    cross_key = _stream(client, "POST", alice_key).json()["listenKey"]
    isolated_key = _stream(client, "POST", alice_key, "symbol=BTCUSDT", isolated=True).json()["listenKey"]

    async def scenario():
        cross, isolated = await connect(f"/ws/{cross_key}"), await connect(f"/ws/{isolated_key}")
        group = user_group(alice.pk)
        await layer().group_send(group, {"type": "margin.call", "payload": {"margin_account": 1, "isolated_symbol": "", "margin_level": "1.25000000", "state": "MARGIN_CALL"}})
        call, _ = await receive_until(cross, lambda m: m.get("e") == "MARGIN_LEVEL_STATUS_CHANGE", parse=as_json)
        assert call["l"] == "1.25000000" and call["s"] == "MARGIN_CALL"
        await layer().group_send(group, {"type": "margin.liquidation", "payload": {"id": 7, "status": "IN_PROGRESS", "reason": "margin_level", "isolatedSymbol": "BTCUSDT"}})
        liq, _ = await receive_until(isolated, lambda m: m.get("e") == "marginLiquidation", parse=as_json)
        assert liq["i"] == 7 and liq["X"] == "IN_PROGRESS" and liq["s"] == "BTCUSDT"
        assert [m["e"] for m in await drain(cross, parse=as_json)] == []  # the isolated account's liquidation
        assert [m["e"] for m in await drain(isolated, parse=as_json)] == []  # the cross account's margin call
        await cross.disconnect()
        await isolated.disconnect()

    async_to_sync(scenario)()


def test_a_transfer_is_a_balance_update_on_the_stream_of_each_account_it_moved(client, margin_terms, usdt, alice, alice_key, django_capture_on_commit_callbacks):
    """Binance: a transfer between the spot wallet and a margin account is a ``balanceUpdate``
    (``d`` the change of the free balance) on each side's user-data stream, and on no other."""
    cross, isolated = margin_account_for(alice), margin_account_for(alice, "BTCUSDT")
    cross_key = _stream(client, "POST", alice_key).json()["listenKey"]
    isolated_key = _stream(client, "POST", alice_key, "symbol=BTCUSDT", isolated=True).json()["listenKey"]
    api_key, secret = api_key_create(user=alice, label="spot stream", permissions=["read"])

    def transfer(src, dst, amount: str, key: str):
        with django_capture_on_commit_callbacks(execute=True):
            margin_transfer(user=alice, asset=usdt, amount=D(amount), from_margin=src, to_margin=dst, idempotency_key=key)

    async def updates(comm, spot: bool = False) -> list[tuple[str, D]]:
        events = [m.get("event", {}) if spot else m for m in await drain(comm, 0.5, parse=as_json)]
        return [(e["a"], D(e["d"])) for e in events if e.get("e") == "balanceUpdate"]

    async def scenario():
        on_cross, on_isolated, spot = await connect(f"/ws/{cross_key}"), await connect(f"/ws/{isolated_key}"), await connect("/ws-api/v3")
        await spot.send_to(text_data=json.dumps({"id": "s", "method": "userDataStream.subscribe.signature", "params": ws_signed(api_key.key, secret)}))
        assert as_json(await spot.receive_from(timeout=2))["status"] == 200
        await sync_to_async(transfer)(None, cross, "25", "t-bu-1")
        assert await updates(on_cross) == [("USDT", D("25"))]
        assert await updates(spot, spot=True) == [("USDT", D("-25"))]
        await sync_to_async(transfer)(cross, isolated, "10", "t-bu-2")
        assert await updates(on_cross) == [("USDT", D("-10"))]
        assert await updates(on_isolated) == [("USDT", D("10"))]
        assert await updates(spot, spot=True) == []  # the spot wallet did not move
        await sync_to_async(transfer)(isolated, None, "4", "t-bu-3")
        assert await updates(on_isolated) == [("USDT", D("-4"))]
        assert await updates(spot, spot=True) == [("USDT", D("4"))]
        assert await updates(on_cross) == []
        for comm in (on_cross, on_isolated, spot):
            await comm.disconnect()

    async_to_sync(scenario)()


def test_closing_the_key_ends_its_stream_and_an_unknown_key_is_refused(client, margin_terms, alice, alice_key, django_capture_on_commit_callbacks):
    key = _stream(client, "POST", alice_key).json()["listenKey"]

    def close():
        with django_capture_on_commit_callbacks(execute=True):
            return _stream(client, "DELETE", alice_key, f"listenKey={key}")

    async def scenario():
        comm = await connect(f"/ws/{key}")
        assert (await sync_to_async(close)()).json() == {}
        expired, _ = await receive_until(comm, lambda m: m.get("e") == "listenKeyExpired", parse=as_json)
        assert expired["listenKey"] == key
        assert (await comm.receive_output(timeout=2))["type"] == "websocket.close"
        refused = WebsocketCommunicator(APP, f"/ws/{key}")
        connected, _ = await refused.connect(timeout=5)
        assert not connected
        unknown = WebsocketCommunicator(APP, "/ws/" + "Z" * 60)
        assert (await unknown.connect(timeout=5))[0] is False
        # a live key whose API key was revoked opens nothing
        live = await sync_to_async(lambda: _stream(client, "POST", alice_key).json()["listenKey"])()
        await sync_to_async(lambda: ApiKey.objects.filter(key=alice_key).update(revoked_at=timezone.now()))()
        revoked = WebsocketCommunicator(APP, f"/ws/{live}")
        assert (await revoked.connect(timeout=5))[0] is False

    async_to_sync(scenario)()


def test_a_listen_key_in_a_log_line_is_redacted():
    from kk99.middleware import redact_secrets

    key = "A1" * 30
    line = redact_secrets(f"GET /ws/{key} 101; PUT /sapi/v1/userDataStream?listenKey={key}")
    assert key not in line and "/ws/[REDACTED]" in line
    assert json.dumps(redact_secrets("GET /ws/btcusdt@trade")) == '"GET /ws/btcusdt@trade"'
