"""Defects found in files other engineers are editing (trading/services.py, trading/apis.py,
trading/streams/), first written as strict xfails and now fixed: each test keeps the
defect from coming back."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.api.factories import make_market, make_trader
from trading.errors import TradingError
from trading.models import Order
from trading.services import order_place

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader(django_user_model):
    make_market()
    return make_trader(django_user_model, "review-trading@example.com", funds={"USDT": "100000", "BTC": "100"})


@pytest.mark.parametrize("field", ["quantity", "price"])
@pytest.mark.parametrize("value", ["1e400", "1" * 30])
def test_v1_order_with_an_absurd_number_is_a_400_not_a_500(trader, field, value):
    user = trader[0]
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    body = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "100", field: value}
    response = client.post("/api/v1/orders/", body, format="json")
    assert response.status_code == 400, response.status_code
    assert not Order.objects.exists()


@pytest.mark.parametrize("stop_price", ["99999999999999999999", "1000000000000000000"])
def test_a_stop_price_the_engine_cannot_represent_is_refused_at_placement(trader, stop_price):
    user = trader[0]
    with pytest.raises(TradingError):
        order_place(user=user, market="BTCUSDT", side="SELL", type="STOP_LOSS_LIMIT", quantity=Decimal("0.01"), price=Decimal("100"),
                    stop_price=Decimal(stop_price), time_in_force="GTC")
    assert not Order.objects.exists()


def test_ws_api_non_ascii_signature_is_an_api_error(trader):
    from trading.streams.userdata import ApiError, verify_signed_params

    verify = getattr(verify_signed_params, "func", verify_signed_params)  # the sync function under database_sync_to_async
    user, key, secret = trader
    with pytest.raises(ApiError):
        verify({"apiKey": key, "timestamp": int(time.time() * 1000), "signature": "\u00e9\u00e9"}, None)
