"""``next`` sends the browser only to this site: sign-in and the order cancel form."""
from __future__ import annotations

import pytest
from django.test import RequestFactory

from accounts.redirects import safe_next_url
from tests.api.factories import make_market, make_trader
from trading.services import order_place

pytestmark = pytest.mark.django_db

HOSTILE = [
    "https://evil.example/",
    "//evil.example/path",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "http:///evil.example",
    "https://testserver.evil.example/",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_next_values_fall_back(target):
    request = RequestFactory().post("/", {"next": target})
    assert safe_next_url(request, "/fallback/") == "/fallback/"


@pytest.mark.parametrize("target", ["/orders/", "/trade/BTCUSDT/?tab=open", "http://testserver/orders/"])
def test_same_site_next_values_are_kept(target):
    assert safe_next_url(RequestFactory().post("/", {"next": target}), "/fallback/") == target


@pytest.mark.parametrize("target", HOSTILE)
def test_order_cancel_never_redirects_off_site(client, django_user_model, target):
    make_market()
    user, _, _ = make_trader(django_user_model, funds={"USDT": "1000"})
    order = order_place(user=user, market="BTCUSDT", side="BUY", type="LIMIT", quantity="1", price="100")
    client.force_login(user)
    response = client.post(f"/orders/{order.pk}/cancel/", {"next": target})
    assert response.status_code == 302 and response["Location"] == "/orders/"


def test_order_cancel_follows_a_same_site_next(client, django_user_model):
    make_market()
    user, _, _ = make_trader(django_user_model, funds={"USDT": "1000"})
    order = order_place(user=user, market="BTCUSDT", side="BUY", type="LIMIT", quantity="1", price="100")
    client.force_login(user)
    response = client.post(f"/orders/{order.pk}/cancel/", {"next": "/trade/BTCUSDT/"})
    assert response["Location"] == "/trade/BTCUSDT/"


@pytest.mark.parametrize("target", HOSTILE[:3])
def test_login_never_redirects_off_site(client, user, password, target):
    response = client.post(f"/login/?next={target}", {"email": user.email, "password": password})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
