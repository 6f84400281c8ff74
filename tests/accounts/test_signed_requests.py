"""Signed requests (item 5 of the production-safety issue) and the one verifier shared by
HTTP and the WebSocket API: parameters split over query and body, unknown or empty-named
parameters, replays inside the receive window, unknown client addresses."""
from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from tests.api.factories import make_market, make_trader
from trading.models import Order

pytestmark = pytest.mark.django_db


def _sig(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _ts() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def trader(db, django_user_model):
    make_market()
    return make_trader(django_user_model, "carol@example.com", funds={"USDT": "100000", "BTC": "100"})


def test_a_signature_cannot_be_recut_between_query_and_body(client, trader):
    """The client signed quantity=10; the attacker moves the ``0`` into the body, so the
    concatenation (what is signed) is unchanged but the query says quantity=1."""
    _, key, secret = trader
    signed_text = f"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=10&price=100&timestamp={_ts()}"
    signature = _sig(secret, signed_text)
    query, body = signed_text.split("quantity=1", 1)[0] + "quantity=1", signed_text.split("quantity=1", 1)[1]
    r = client.post(f"/api/v3/order?{query}", data=f"{body}&signature={signature}", content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=key)
    assert r.status_code == 400 and r.json()["code"] == -1101, r.content
    assert not Order.objects.exists()


def test_empty_named_parameter_is_refused_with_1104(client, trader):
    _, key, secret = trader
    query = f"=x&timestamp={_ts()}"
    r = client.get(f"/api/v3/account?{query}&signature={_sig(secret, query)}", HTTP_X_MBX_APIKEY=key)
    assert r.status_code == 400 and r.json()["code"] == -1104, r.content


def test_unknown_parameter_is_refused_with_1104(client, trader):
    _, key, secret = trader
    query = f"symbol=BTCUSDT&sneaky=1&timestamp={_ts()}"
    r = client.get(f"/api/v3/openOrders?{query}&signature={_sig(secret, query)}", HTTP_X_MBX_APIKEY=key)
    assert r.status_code == 400 and r.json() == {"code": -1104, "msg": "Parameter 'sneaky' was not read: unknown or malformed name."}


def test_known_parameters_still_pass(client, trader):
    _, key, secret = trader
    query = f"symbol=BTCUSDT&recvWindow=5000&timestamp={_ts()}"
    r = client.get(f"/api/v3/openOrders?{query}&signature={_sig(secret, query)}", HTTP_X_MBX_APIKEY=key)
    assert r.status_code == 200, r.content


def test_a_replayed_signed_request_is_refused_with_1021(client, trader):
    _, key, secret = trader
    body = f"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=100&newOrderRespType=ACK&timestamp={_ts()}"
    data = f"{body}&signature={_sig(secret, body)}"
    first = client.post("/api/v3/order", data=data, content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=key)
    again = client.post("/api/v3/order", data=data, content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=key)
    assert first.status_code == 200, first.content
    assert again.status_code == 400 and again.json()["code"] == -1021, again.content
    assert Order.objects.count() == 1


def test_a_bad_signature_does_not_enter_the_replay_cache(client, trader):
    _, key, secret = trader
    query = f"timestamp={_ts()}"
    good = _sig(secret, query)
    bad = client.get(f"/api/v3/account?{query}&signature={'0' * 64}", HTTP_X_MBX_APIKEY=key)
    ok = client.get(f"/api/v3/account?{query}&signature={good}", HTTP_X_MBX_APIKEY=key)
    assert bad.json()["code"] == -1022 and ok.status_code == 200


def test_replay_cache_down_refuses_instead_of_accepting(client, trader, monkeypatch):
    from accounts import signing

    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(signing.cache, "add", broken)
    _, key, secret = trader
    query = f"timestamp={_ts()}"
    r = client.get(f"/api/v3/account?{query}&signature={_sig(secret, query)}", HTTP_X_MBX_APIKEY=key)
    assert r.status_code == 503 and r.json()["code"] == -1001
