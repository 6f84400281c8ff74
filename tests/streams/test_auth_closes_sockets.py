"""Logout, a password change or reset, deactivation and key revocation close the user's open
WebSockets — browser pages (/ws/ui/<symbol>/) and the WebSocket API (/ws-api/v3)."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts import services
from accounts.signing import sign
from accounts.sockets import CLOSE_AUTH_REVOKED
from kk99.routing import websocket_urlpatterns
from tests.streams.helpers import APP, ORIGIN, as_json, receive_until
from trading.streams.userdata import signature_payload

pytestmark = pytest.mark.django_db

PASSWORD = "pw-not-used-123"
UI = "/ws/ui/BTCUSDT/"


async def _closed_with(comm: WebsocketCommunicator, timeout: float = 3.0):
    """The close code the server sent within ``timeout`` (skipping data frames), or None."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if not comm.output_queue.empty():
            message = await comm.receive_output(timeout=1)
            if message["type"] == "websocket.close":
                return message.get("code")
            continue
        if comm.future.done():
            return "ended"
        await asyncio.sleep(0.02)
    return None


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a sync action from the scenario with its on-commit publishes executed."""

    def run(fn):
        def inner():
            with django_capture_on_commit_callbacks(execute=True):
                return fn()

        return sync_to_async(inner)()

    return run


def _session(user) -> tuple[Client, str]:
    client = Client()
    client.force_login(user)
    return client, client.cookies["sessionid"].value


async def _ui(cookie: str) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), UI, headers=[ORIGIN, (b"cookie", f"sessionid={cookie}".encode())])
    assert (await comm.connect(timeout=5))[0]
    await receive_until(comm, lambda m: 'id="open-orders"' in m)  # the private snapshot: signed in
    return comm


async def _ws_api(key: str, secret: str) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(APP, "/ws-api/v3", headers=[ORIGIN])
    comm.scope["client"] = ["127.0.0.1", 5000]
    assert (await comm.connect(timeout=5))[0]
    params = {"apiKey": key, "timestamp": int(time.time() * 1000)}
    params["signature"] = sign(secret, signature_payload(params))
    await comm.send_to(text_data=json.dumps({"id": 1, "method": "userDataStream.subscribe.signature", "params": params}))
    assert as_json(await comm.receive_from(timeout=3))["status"] == 200
    return comm


def test_a_password_change_closes_the_users_browser_sockets(market, alice, bob, committed):
    _, alice_cookie = _session(alice)
    _, bob_cookie = _session(bob)

    async def scenario():
        mine, theirs = await _ui(alice_cookie), await _ui(bob_cookie)
        await committed(lambda: services.password_change(user=alice, old_password=PASSWORD, new_password="A-new-Passw0rd-42"))
        assert await _closed_with(mine) == CLOSE_AUTH_REVOKED
        assert await _closed_with(theirs, 0.5) is None
        await theirs.disconnect()

    async_to_sync(scenario)()


def test_logout_closes_only_that_sessions_sockets(market, alice, committed):
    laptop, laptop_cookie = _session(alice)
    _, phone_cookie = _session(alice)

    async def scenario():
        on_laptop, on_phone = await _ui(laptop_cookie), await _ui(phone_cookie)
        await committed(lambda: laptop.post("/logout/"))
        assert await _closed_with(on_laptop) == CLOSE_AUTH_REVOKED
        assert await _closed_with(on_phone, 0.5) is None
        await on_phone.disconnect()

    async_to_sync(scenario)()


def test_revoking_an_api_key_closes_the_ws_api_connection(market, alice, committed):
    api_key, secret = services.api_key_create(user=alice, label="bot", permissions=["read"])

    async def scenario():
        comm = await _ws_api(api_key.key, secret)
        await committed(lambda: services.api_key_revoke(api_key=api_key, actor=alice))
        assert await _closed_with(comm) == CLOSE_AUTH_REVOKED

    async_to_sync(scenario)()


def test_deactivating_a_user_closes_their_browser_and_ws_api_sockets(market, alice, committed):
    api_key, secret = services.api_key_create(user=alice, label="bot", permissions=["read"])
    _, cookie = _session(alice)

    def deactivate():
        alice.is_active = False
        alice.save()

    async def scenario():
        page, api = await _ui(cookie), await _ws_api(api_key.key, secret)
        await committed(deactivate)
        assert await _closed_with(page) == CLOSE_AUTH_REVOKED
        assert await _closed_with(api) == CLOSE_AUTH_REVOKED

    async_to_sync(scenario)()


def test_a_password_reset_closes_the_ws_api_connection(market, alice, committed):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    api_key, secret = services.api_key_create(user=alice, label="bot", permissions=["read"])
    uid, token = urlsafe_base64_encode(force_bytes(alice.pk)), default_token_generator.make_token(alice)

    async def scenario():
        api = await _ws_api(api_key.key, secret)
        await committed(lambda: services.password_reset_confirm(uidb64=uid, token=token, new_password="A-new-Passw0rd-42"))
        assert await _closed_with(api) == CLOSE_AUTH_REVOKED

    async_to_sync(scenario)()


def test_a_password_set_outside_the_services_also_closes_the_sockets(market, alice, committed):
    """``changepassword``, the admin's password form or a script: set_password + save."""
    _, cookie = _session(alice)

    def set_password():
        alice.set_password("A-new-Passw0rd-42")
        alice.save()

    async def scenario():
        page = await _ui(cookie)
        await committed(set_password)
        assert await _closed_with(page) == CLOSE_AUTH_REVOKED

    async_to_sync(scenario)()


def test_other_saves_of_the_user_leave_the_sockets_open(market, alice, committed):
    _, cookie = _session(alice)

    def touch():
        alice.kyc_tier = 2
        alice.save()

    async def scenario():
        page = await _ui(cookie)
        await committed(touch)
        assert await _closed_with(page, 0.5) is None
        await page.disconnect()

    async_to_sync(scenario)()
