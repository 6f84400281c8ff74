"""The trading pages over HTTP: same fragments as the stream, inline errors, CSRF, escaping."""
from __future__ import annotations


import pytest
from django.test import Client
from django.urls import reverse

from trading.models import Order

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice_client(alice):
    c = Client()
    c.force_login(alice)
    return c


def test_trade_page_renders_every_fragment_for_anonymous_visitors(market, exchange, alice):
    from asgiref.sync import async_to_sync

    async_to_sync(exchange.place)(alice, "BUY", "99.00", "1")
    async_to_sync(exchange.match)()
    r = Client().get(reverse("trading:trade", args=["BTCUSDT"]))
    body = r.content.decode()
    assert r.status_code == 200
    for fragment_id in ("ob-book", "recent-trades", "market-ticker", "chart", "open-orders", "order-form-BUY", "order-form-SELL"):
        assert f'id="{fragment_id}"' in body
    assert 'ws-connect="/ws/ui/BTCUSDT/"' in body and "99.00" in body and "Log in to trade" in body
    assert "<script>" not in body and " style=" not in body  # CSP: no inline scripts or styles


def test_fragment_requests_render_only_the_fragment(market):
    r = Client().get(reverse("trading:trade", args=["BTCUSDT"]), {"fragment": "book"}, **HX)
    assert r.content.decode().lstrip().startswith('<div id="ob-book"')


def test_bad_order_shows_an_inline_error_and_changes_nothing(market, alice, alice_client):
    r = alice_client.post(reverse("trading:order_create", args=["BTCUSDT"]), {"side": "BUY", "type": "LIMIT", "price": "100.005", "quantity": "1"}, **HX)
    body = r.content.decode()
    assert r.status_code == 200 and 'id="order-form-BUY"' in body and "field-error" in body and "multiple of 0.01" in body
    assert not Order.objects.exists()
    r = alice_client.post(reverse("trading:order_create", args=["BTCUSDT"]), {"side": "SELL", "type": "LIMIT", "price": "100", "quantity": "999"}, **HX)
    assert "not enough btc" in r.content.decode().lower()  # plain words, not the API's


def test_placing_and_cancelling_from_the_page(market, alice, alice_client):
    r = alice_client.post(reverse("trading:order_create", args=["BTCUSDT"]), {"side": "SELL", "type": "LIMIT", "price": "101.5", "quantity": "0.5"}, **HX)
    body = r.content.decode()
    order = Order.objects.get()
    assert "placed" in body and f'id="open-order-{order.pk}"' in body and 'hx-swap-oob="true"' in body
    r = alice_client.post(reverse("trading:order_cancel", args=[order.pk]), **HX)
    assert r.status_code == 200 and "Canceling" in r.content.decode()
    assert Order.objects.get().cancel_requested


def test_another_users_order_cannot_be_cancelled(market, alice, bob, alice_client):
    c = Client()
    c.force_login(bob)
    c.post(reverse("trading:order_create", args=["BTCUSDT"]), {"side": "SELL", "type": "LIMIT", "price": "101.5", "quantity": "0.5"}, **HX)
    order = Order.objects.get()
    assert alice_client.post(reverse("trading:order_cancel", args=[order.pk]), **HX).status_code == 404
    assert not Order.objects.get().cancel_requested


def test_forms_require_csrf(market, alice):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    r = c.post(reverse("trading:order_create", args=["BTCUSDT"]), {"side": "SELL", "type": "LIMIT", "price": "101.5", "quantity": "0.5"}, **HX)
    assert r.status_code == 403 and not Order.objects.exists()


def test_klines_markets_portfolio_orders(market, exchange, alice, bob, alice_client):
    from asgiref.sync import async_to_sync

    async_to_sync(exchange.place)(alice, "SELL", "100.00", "1")
    async_to_sync(exchange.place)(bob, "BUY", "100.00", "1")
    async_to_sync(exchange.match)()
    rows = Client().get(reverse("trading:klines", args=["BTCUSDT"]), {"interval": "1m"}).json()["candles"]
    assert len(rows) == 1 and rows[0]["close"] == 100.0 and rows[0]["volume"] == 1.0
    assert Client().get(reverse("trading:klines", args=["BTCUSDT"]), {"interval": "7m"}).status_code == 400
    assert 'id="mkt-BTCUSDT"' in Client().get(reverse("trading:markets")).content.decode()
    body = alice_client.get(reverse("trading:portfolio")).content.decode()
    assert "Estimated value" in body and 'data-asset="USDT"' in body
    assert "BTCUSDT" in alice_client.get(reverse("trading:orders")).content.decode()
    assert "Maker" in alice_client.get(reverse("trading:fills")).content.decode()


def test_user_strings_are_escaped(market, django_user_model, btc, usdt):
    from tests.streams.conftest import fund

    user = django_user_model.objects.create_user(email="x@example.com", password="pw-not-used-123", kyc_tier=2)
    fund(user, usdt, "1000")
    c = Client()
    c.force_login(user)
    r = c.post(reverse("trading:order_create", args=["BTCUSDT"]), {"side": "BUY", "type": "LIMIT", "price": "<script>x</script>", "quantity": "1"}, **HX)
    assert "<script>x</script>" not in r.content.decode() and "&lt;script&gt;" in r.content.decode()
