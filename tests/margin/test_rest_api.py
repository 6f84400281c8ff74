"""REST v1 margin endpoints (JWT/session users through DRF): account state, transfer, borrow,
repay, margin orders and their cancel, interest; refusals are 4xx with the catalog code and
write nothing; the endpoints are in the OpenAPI schema."""
from __future__ import annotations


import pytest
from rest_framework.test import APIClient

from margin.models import Loan
from trading.models import Order
from wallets.models import JournalEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(cross):
    user, margin = cross
    client = APIClient()
    client.force_authenticate(user)
    return client, user, margin


def test_transfer_borrow_order_repay_through_rest_v1(api, market):
    client, user, margin = api
    r = client.post("/api/v1/margin/transfers/", {"asset": "USDT", "amount": "1000", "direction": "to_margin", "request_key": "t1"}, format="json")
    assert r.status_code == 201, r.content
    again = client.post("/api/v1/margin/transfers/", {"asset": "USDT", "amount": "1000", "direction": "to_margin", "request_key": "t1"}, format="json")
    assert again.json()["journal_event_id"] == r.json()["journal_event_id"]  # same key, same transfer
    assert client.post("/api/v1/margin/borrow/", {"asset": "USDT", "amount": "500"}, format="json").status_code == 201
    state = client.get("/api/v1/margin/account/").json()
    assert state["state"] == "NORMAL" and state["margin_level"] == "2.99994000"
    assert {a["asset"]: a["borrowed"] for a in state["assets"]} == {"USDT": "500.00000000"}
    placed = client.post("/api/v1/margin/orders/", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100", "side_effect_type": "MARGIN_BUY"}, format="json")
    assert placed.status_code == 201, placed.content
    assert Order.objects.get(pk=placed.json()["id"]).ledger_account_id == margin.account_id
    assert [o["id"] for o in client.get("/api/v1/margin/orders/").json()] == [placed.json()["id"]]
    assert client.get("/api/v1/orders/").json() == []  # spot open orders
    assert client.delete(f"/api/v1/margin/orders/{placed.json()['id']}/").status_code == 202
    assert client.post("/api/v1/margin/repay/", {"asset": "USDT", "amount": "500.01"}, format="json").status_code == 201
    assert Loan.objects.get(account=margin.account).owed == 0
    assert len(client.get("/api/v1/margin/interest/").json()) == 1


def test_refusals_are_4xx_with_their_code_and_write_nothing(api):
    client, user, margin = api
    events = JournalEvent.objects.count()
    r = client.post("/api/v1/margin/borrow/", {"asset": "USDT", "amount": "10"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "margin_borrow_exceeds_max"
    r = client.post("/api/v1/margin/repay/", {"asset": "USDT", "amount": "1"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "margin_repay_exceeds_debt"
    r = client.post("/api/v1/margin/transfers/", {"asset": "USDT", "amount": "1", "direction": "from_margin"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "margin_transfer_exceeds_max"
    r = client.post("/api/v1/margin/transfers/", {"asset": "USDT", "amount": "1.5e400", "direction": "to_margin"}, format="json")
    assert r.status_code == 400
    r = client.get("/api/v1/margin/account/?isolated_symbol=BTCUSDT")
    assert r.status_code == 404 and r.json()["error"]["code"] == "margin_account_missing"
    assert JournalEvent.objects.count() == events


def test_margin_endpoints_are_in_the_openapi_schema(client):
    schema = client.get("/api/schema/?format=json").json()
    for path in ("/api/v1/margin/account/", "/api/v1/margin/transfers/", "/api/v1/margin/borrow/", "/api/v1/margin/repay/", "/api/v1/margin/orders/", "/api/v1/margin/interest/"):
        assert path in schema["paths"], path
