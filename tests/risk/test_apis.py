"""GET /api/v1/risk/summary and GET /api/v1/markets/{symbol}/status."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from risk import killswitch
from risk.models import KillSwitch, RiskFigure, RiskLimit
from trading.models import Market
from trading.services import order_place

pytestmark = pytest.mark.django_db


def _v1(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def test_the_risk_summary_shows_limits_usage_and_the_latest_var(alice, bob, market):
    user = alice[0]
    RiskLimit.objects.create(user=user, max_open_orders=5, orders_per_10s=9)
    order_place(user=user, market="BTCUSDT", side="BUY", type="LIMIT", quantity="1", price="100")
    for as_of, var in ((dt.date(2026, 6, 1), "1"), (dt.date(2026, 6, 2), "123.45")):
        RiskFigure.objects.create(as_of=as_of, user=user, horizon_days=1, confidence=Decimal("0.99"), exposure_usdt=Decimal("1000"), var_usdt=Decimal(var), es_usdt=Decimal("150"))
    RiskFigure.objects.create(as_of=dt.date(2026, 6, 3), user=bob[0], horizon_days=1, confidence=Decimal("0.99"), exposure_usdt=1, var_usdt=999, es_usdt=999)
    body = _v1(user).get("/api/v1/risk/summary").json()
    assert body["limits"]["max_open_orders"] == 5 and body["limits"]["orders_per_10s"] == 9
    assert body["usage"]["open_orders"] == 1 and body["usage"]["orders_10s"] == 1
    assert body["as_of"] == "2026-06-02"
    (figure,) = body["var"]
    assert figure["var_usdt"] == "123.450000000000000000" and figure["confidence"] == "0.9900"
    assert body["kill_switch"] is None


def test_the_risk_summary_needs_authentication(client):
    assert client.get("/api/v1/risk/summary").status_code == 401


def test_market_status_is_trading_with_null_halt_fields(client, market):
    body = client.get("/api/v1/markets/btcusdt/status").json()
    assert body["symbol"] == "BTCUSDT" and body["status"] == "trading" and body["kill_switch"] is None
    assert set(body["halt"]) >= {"reason", "band_low", "band_high", "until"}
    assert all(v is None for v in body["halt"].values())


def test_market_status_shows_a_halt_and_a_kill_switch(client, market, django_user_model):
    Market.objects.filter(pk=market.pk).update(status=Market.Status.HALT)
    assert client.get("/api/v1/markets/BTCUSDT/status/").json()["status"] == "halted"
    Market.objects.filter(pk=market.pk).update(status=Market.Status.TRADING)
    staff = django_user_model.objects.create_superuser(email="staff@kk99.local", password="pw-staff-123456")
    killswitch.kill_switch_engage(actor=staff, mode=KillSwitch.Mode.CANCEL_ONLY, market=market, cancel_all=False)
    body = client.get("/api/v1/markets/BTCUSDT/status").json()
    assert body["status"] == "cancel_only" and body["kill_switch"]["mode"] == "CANCEL_ONLY"


def test_market_status_of_an_unknown_symbol_is_a_4xx(client, market):
    response = client.get("/api/v1/markets/NOPE/status")
    assert 400 <= response.status_code < 500 and response.json()["error"]["code"] == "invalid_symbol"
