"""The WebSocket API (/ws-api/v3): ping/time, signed user-data subscription, private events
only to the key's owner."""
from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync

from accounts.services import api_key_create
from accounts.signing import sign
from tests.streams.helpers import as_json, connect, drain, receive_until
from trading.streams.userdata import signature_payload

pytestmark = pytest.mark.django_db


def signed(api_key: str, secret: str, **extra) -> dict:
    params = {"apiKey": api_key, "timestamp": int(time.time() * 1000), **extra}
    params["signature"] = sign(secret, signature_payload(params))
    return params


def test_ping_and_time(market):
    async def scenario():
        comm = await connect("/ws-api/v3")
        await comm.send_to(text_data=json.dumps({"id": "p1", "method": "ping"}))
        reply = as_json(await comm.receive_from(timeout=2))
        assert reply["id"] == "p1" and reply["status"] == 200 and reply["result"] == {} and reply["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
        await comm.send_to(text_data=json.dumps({"id": 2, "method": "time"}))
        assert abs(as_json(await comm.receive_from(timeout=2))["result"]["serverTime"] - time.time() * 1000) < 5000
        await comm.send_to(text_data=json.dumps({"id": 3, "method": "nope"}))
        assert as_json(await comm.receive_from(timeout=2))["error"]["code"] == -1020
        await comm.disconnect()

    async_to_sync(scenario)()


def test_bad_signature_and_stale_timestamp_are_refused(market, alice):
    key, secret = api_key_create(user=alice, label="bot", permissions=["read"])

    async def scenario():
        comm = await connect("/ws-api/v3")
        params = signed(key.key, secret)
        params["signature"] = "0" * 64
        await comm.send_to(text_data=json.dumps({"id": 1, "method": "userDataStream.subscribe.signature", "params": params}))
        assert as_json(await comm.receive_from(timeout=2))["error"]["code"] == -1022
        stale = {"apiKey": key.key, "timestamp": int(time.time() * 1000) - 120_000}
        stale["signature"] = sign(secret, signature_payload(stale))
        await comm.send_to(text_data=json.dumps({"id": 2, "method": "userDataStream.subscribe.signature", "params": stale}))
        assert as_json(await comm.receive_from(timeout=2))["error"]["code"] == -1021
        await comm.send_to(text_data=json.dumps({"id": 3, "method": "userDataStream.subscribe.signature", "params": signed("nokey", secret)}))
        assert as_json(await comm.receive_from(timeout=2))["error"]["code"] == -2015
        await comm.disconnect()

    async_to_sync(scenario)()


def test_user_data_stream_delivers_execution_reports_and_positions_to_the_owner_only(market, exchange, alice, bob):
    a_key, a_secret = api_key_create(user=alice, label="bot", permissions=["read"])
    b_key, b_secret = api_key_create(user=bob, label="bot", permissions=["read"])

    async def scenario():
        comms = {}
        for user, key, secret in ((alice, a_key, a_secret), (bob, b_key, b_secret)):
            comm = await connect("/ws-api/v3")
            await comm.send_to(text_data=json.dumps({"id": "s", "method": "userDataStream.subscribe.signature", "params": signed(key.key, secret, recvWindow=5000)}))
            reply = as_json(await comm.receive_from(timeout=2))
            assert reply["status"] == 200 and reply["result"] == {"subscriptionId": 0}, reply
            comms[user.pk] = comm
        sell = await exchange.place(alice, "SELL", "100.00", "1")
        await exchange.match()
        new, _ = await receive_until(comms[alice.pk], lambda m: m.get("event", {}).get("e") == "executionReport", parse=as_json)
        assert new["subscriptionId"] == 0 and new["event"]["x"] == "NEW" and new["event"]["i"] == sell.pk and new["event"]["S"] == "SELL"
        await exchange.place(bob, "BUY", "100.00", "0.4")
        await exchange.match()
        trade, seen = await receive_until(comms[alice.pk], lambda m: m.get("event", {}).get("x") == "TRADE", parse=as_json)
        ev = trade["event"]
        assert ev["i"] == sell.pk and ev["l"] == "0.400" and ev["L"] == "100.00" and ev["m"] is True and ev["N"] == "USDT" and ev["t"] == 1
        position, _ = await receive_until(comms[alice.pk], lambda m: m.get("event", {}).get("e") == "outboundAccountPosition", parse=as_json)
        assert {b["a"] for b in position["event"]["B"]} == {"BTC", "USDT"}
        bob_events = [m["event"] for m in await drain(comms[bob.pk], 0.5, parse=as_json) if "event" in m]
        assert all(e.get("i") != sell.pk for e in bob_events if e["e"] == "executionReport")
        assert any(e["e"] == "executionReport" and e["x"] == "TRADE" and e["S"] == "BUY" for e in bob_events)
        await comms[alice.pk].send_to(text_data=json.dumps({"id": "u", "method": "userDataStream.unsubscribe"}))
        assert as_json(await comms[alice.pk].receive_from(timeout=2))["status"] == 200
        for comm in comms.values():
            await comm.disconnect()

    async_to_sync(scenario)()
