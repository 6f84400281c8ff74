"""The WebSocket API's signed subscription goes through the one verifier of signed HTTP
requests (accounts.signing.signed_request_verify): unknown client addresses, replays,
unknown parameters and the trusted-proxy client address."""
from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from accounts import services
from accounts.signing import sign
from tests.streams.helpers import APP, ORIGIN, as_json
from trading.streams.userdata import signature_payload

pytestmark = pytest.mark.django_db


def _ts() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(email="dave@example.com", password="pw-not-used-123", kyc_tier=1)


def _ws_signed(key: str, secret: str, **extra) -> dict:
    params = {"apiKey": key, "timestamp": _ts(), **extra}
    params["signature"] = sign(secret, signature_payload(params))
    return params


async def _ws(client_addr, headers=()):
    comm = WebsocketCommunicator(APP, "/ws-api/v3", headers=[ORIGIN, *headers])
    comm.scope["user"] = AnonymousUser()
    comm.scope["client"] = client_addr
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


def _subscribe(params, client_addr, headers=()) -> dict:
    async def scenario():
        comm = await _ws(client_addr, headers)
        await comm.send_to(text_data=json.dumps({"id": 1, "method": "userDataStream.subscribe.signature", "params": params}))
        reply = as_json(await comm.receive_from(timeout=3))
        await comm.disconnect()
        return reply

    return async_to_sync(scenario)()


def test_ws_api_refuses_an_allow_listed_key_when_the_client_address_is_unknown(user):
    api_key, secret = services.api_key_create(user=user, label="bot", permissions=["read"], ip_allowlist=["127.0.0.1"])
    reply = _subscribe(_ws_signed(api_key.key, secret), None)
    assert reply["status"] == 401 and reply["error"]["code"] == -2015


def test_ws_api_accepts_an_allow_listed_key_from_an_allowed_address(user):
    api_key, secret = services.api_key_create(user=user, label="bot", permissions=["read"], ip_allowlist=["127.0.0.1"])
    reply = _subscribe(_ws_signed(api_key.key, secret), ["127.0.0.1", 5000])
    assert reply["status"] == 200, reply


def test_ws_api_refuses_a_replayed_subscription(user):
    api_key, secret = services.api_key_create(user=user, label="bot", permissions=["read"])
    params = _ws_signed(api_key.key, secret)
    assert _subscribe(params, ["127.0.0.1", 5000])["status"] == 200
    again = _subscribe(params, ["127.0.0.1", 5000])
    assert again["status"] == 400 and again["error"]["code"] == -1021


def test_ws_api_refuses_unknown_parameters(user):
    api_key, secret = services.api_key_create(user=user, label="bot", permissions=["read"])
    reply = _subscribe(_ws_signed(api_key.key, secret, extra="1"), ["127.0.0.1", 5000])
    assert reply["status"] == 400 and reply["error"]["code"] == -1104


def test_ws_api_reads_the_client_address_behind_a_trusted_proxy(user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    api_key, secret = services.api_key_create(user=user, label="bot", permissions=["read"], ip_allowlist=["203.0.113.7"])
    forwarded = [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.7")]
    assert _subscribe(_ws_signed(api_key.key, secret), ["10.0.0.2", 5000], forwarded)["status"] == 200
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
    assert _subscribe(_ws_signed(api_key.key, secret), ["10.0.0.2", 5000], forwarded)["error"]["code"] == -2015
