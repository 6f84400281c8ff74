"""The user's fills are queried once (trading.selectors.fills_for_user): REST v1 /fills and
/api/v3 myTrades answer from the same query, and filtering by an order id never shows the
fills of another user's order."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests.api.factories import run_engine
from trading.models import Order
from trading.selectors import fills_for_user

pytestmark = pytest.mark.django_db

SELL = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100", "newOrderRespType": "ACK"}
BUY = {**SELL, "side": "BUY"}


def _trade(alice_api, bob_api) -> tuple[int, int]:
    bob_order = bob_api.post("order", SELL).json()["orderId"]
    run_engine()
    alice_order = alice_api.post("order", BUY).json()["orderId"]
    run_engine()
    return alice_order, bob_order


def test_filtering_by_the_counterpartys_order_id_shows_nothing(alice, bob, alice_api, bob_api):
    alice_order, bob_order = _trade(alice_api, bob_api)
    user = alice[0]
    assert [t.taker_order_id for t in fills_for_user(user=user, order_id=alice_order)] == [alice_order]
    assert list(fills_for_user(user=user, order_id=bob_order)) == []
    assert alice_api.get("myTrades", {"symbol": "BTCUSDT", "orderId": bob_order}).json() == []


def test_rest_v1_and_api_v3_list_the_same_fills(alice, bob, alice_api, bob_api):
    _trade(alice_api, bob_api)
    v1 = APIClient()
    v1.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(bob[0]).access_token}")
    v1_ids = [f["trade_id"] for f in v1.get("/api/v1/fills/").json()["results"]]
    v3_ids = [t["id"] for t in bob_api.get("myTrades", {"symbol": "BTCUSDT"}).json()]
    assert v1_ids == v3_ids == [t.trade_id for t in fills_for_user(user=bob[0])]
    assert Order.objects.count() == 2
