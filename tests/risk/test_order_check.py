"""The pre-trade risk hook (risk.services.order_check): it sees every new order, and when it
refuses, nothing is written — no Order row, no journal event, no hold — and every API answers
a clear 4xx."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from risk import services as risk_services
from risk.errors import RiskRejected
from tests.api.factories import balance
from trading.models import Order
from trading.orders import OrderRequest
from wallets.models import JournalEvent

pytestmark = pytest.mark.django_db

LIMIT_BUY_V3 = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "100"}
LIMIT_BUY_V1 = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100"}


@pytest.fixture
def refusing_risk(monkeypatch):
    seen: list[tuple] = []

    def refuse(*, request, user, market, **_):
        seen.append((request, user, market))
        raise RiskRejected("Position limit reached.", reason="position_limit")

    monkeypatch.setattr(risk_services, "order_check", refuse)
    return seen


def _written(user) -> tuple:
    return Order.objects.count(), JournalEvent.objects.count(), balance(user, "USDT"), balance(user, "BTC")


def test_the_risk_hook_allows_every_order_by_default(alice_api, alice):
    response = alice_api.post("order", {**LIMIT_BUY_V3, "newOrderRespType": "ACK"})
    assert response.status_code == 200, response.content
    assert Order.objects.filter(user=alice[0]).count() == 1


def test_a_risk_refusal_on_api_v3_writes_nothing_and_is_a_clear_4xx(alice_api, alice, refusing_risk):
    before = _written(alice[0])
    response = alice_api.post("order", LIMIT_BUY_V3)
    assert response.status_code == 400
    assert response.json() == {"code": -2010, "msg": "Order was rejected by risk checks."}
    assert _written(alice[0]) == before
    assert len(refusing_risk) == 1


def test_a_risk_refusal_on_rest_v1_writes_nothing_and_is_a_clear_4xx(alice, refusing_risk):
    user = alice[0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    before = _written(user)
    response = client.post("/api/v1/orders/", LIMIT_BUY_V1, format="json")
    assert response.status_code == 403
    body = response.json()["error"]
    assert body["code"] == "risk_rejected" and body["details"] == {"reason": "position_limit"}
    assert _written(user) == before


def test_a_risk_refusal_on_the_order_test_endpoint_is_reported_too(alice_api, alice, refusing_risk):
    before = _written(alice[0])
    response = alice_api.post("order/test", LIMIT_BUY_V3)
    assert response.status_code == 400 and response.json()["code"] == -2010
    assert _written(alice[0]) == before


def test_the_risk_hook_sees_the_typed_request_the_user_and_the_market(alice_api, alice, market, refusing_risk):
    alice_api.post("order", {**LIMIT_BUY_V3, "newClientOrderId": "risk-1"})
    (request, user, seen_market), = refusing_risk
    assert isinstance(request, OrderRequest)
    assert (request.side, request.type, request.client_order_id, str(request.price)) == ("BUY", "LIMIT", "risk-1", "100")
    assert user == alice[0] and seen_market == market


def test_the_risk_hook_runs_after_the_account_market_and_filter_checks(alice_api, alice, market, refusing_risk):
    # A filter failure is reported before the risk hook is asked.
    response = alice_api.post("order", {**LIMIT_BUY_V3, "price": "100.001"})
    assert response.json()["code"] == -1013 and refusing_risk == []
