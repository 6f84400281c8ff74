"""/api/v3 runs a lean middleware chain (kk99.middleware.ApiFastPathMiddleware) and a
pipelined request-weight charge: what it skips must not matter, what it keeps must hold."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import override_settings

from accounts.models import ApiKey
from accounts.signing import API_KEY_CACHE_VERSION_KEY, _key_cache
from kk99.middleware import API_CONTENT_SECURITY_POLICY
import trading.services
from trading.engine.publishing import last_price_cache_key
from trading.models import Order


def test_api_answers_keep_security_headers_and_set_no_cookies(client, alice_api):
    r = alice_api.post("kk99/noop")

    assert r.status_code == 200
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["X-Frame-Options"] == "DENY"
    assert r["Referrer-Policy"] == "same-origin"
    assert r["Content-Security-Policy"] == API_CONTENT_SECURITY_POLICY
    assert len(r["X-Request-ID"]) == 32
    assert r["X-MBX-USED-WEIGHT-1M"] == "1"
    assert not r.cookies  # no session, no CSRF cookie


def test_browser_pages_keep_the_page_csp_and_csrf(client, db):
    r = client.get("/login/")

    assert "script-src 'self'" in r["Content-Security-Policy"]
    assert "csrftoken" in r.cookies


def test_api_still_refuses_a_host_not_allowed(client, db):
    r = client.get("/api/v3/ping", HTTP_HOST="evil.example.com")

    assert r.status_code == 400


@override_settings(CORS_ALLOWED_ORIGINS=["https://bots.example.com"])
def test_api_still_answers_cors_for_allowed_origins(client, db):
    r = client.get("/api/v3/ping", HTTP_ORIGIN="https://bots.example.com")

    assert r["Access-Control-Allow-Origin"] == "https://bots.example.com"


def test_a_revocation_elsewhere_refuses_a_cached_key_on_the_next_request(alice_api, alice):
    assert alice_api.post("kk99/noop").status_code == 200
    assert alice[1] in _key_cache

    # Another process revoked the key: the row changed and the shared version moved, but
    # this process's cache was not cleared.
    ApiKey.objects.filter(key=alice[1]).update(revoked_at="2020-01-01T00:00:00Z")
    try:
        cache.incr(API_KEY_CACHE_VERSION_KEY)
    except ValueError:
        cache.set(API_KEY_CACHE_VERSION_KEY, 1, timeout=None)
    r = alice_api.post("kk99/noop")

    assert r.status_code == 401 and r.json()["code"] == -2015


def test_deactivating_a_user_applies_at_once_to_a_cached_key(alice_api, alice):
    assert alice_api.post("kk99/noop").status_code == 200

    type(alice[0]).objects.filter(pk=alice[0].pk).update(is_active=False)
    r = alice_api.post("kk99/noop")

    assert r.status_code == 401 and r.json()["code"] == -2015


def test_weight_counter_accumulates_per_minute(client, db):
    used = [int(client.get("/api/v3/ping")["X-MBX-USED-WEIGHT-1M"]) for _ in range(3)]
    heavy = int(client.get("/api/v3/depth?symbol=NOPE&limit=5000")["X-MBX-USED-WEIGHT-1M"])

    assert used == [1, 2, 3] and heavy == 3 + 250


@pytest.mark.redis
def test_a_new_order_takes_the_band_reference_from_the_weight_round_trip(alice_api, market, monkeypatch):
    # The engine published 200 as the last price; the market's configured reference is 100
    # and its band ±50 %. A separate cache read is forbidden: the value must come from the
    # request-weight pipeline.
    cache.set(last_price_cache_key(market.symbol), "200", timeout=60)

    def no_second_read(symbol):
        raise AssertionError("the last price was read in a round trip of its own")

    monkeypatch.setattr(trading.services, "market_last_price_published", no_second_read)
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1", "newOrderRespType": "ACK"}

    refused = alice_api.post("order", {**order, "price": "90"})  # inside 100 ± 50 %, outside 200 ± 50 %
    accepted = alice_api.post("order", {**order, "price": "290"})  # the other way round

    assert (refused.status_code, refused.json()) == (400, {"code": -1013, "msg": "Filter failure: PERCENT_PRICE"})
    assert accepted.status_code == 200 and Order.objects.get().price == Decimal("290")


@pytest.mark.redis
def test_a_new_order_without_a_published_price_reads_the_committed_state(alice_api, market):
    # Nothing published (cache miss): the band's reference is the market's configured one.
    cache.delete(last_price_cache_key(market.symbol))
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1", "newOrderRespType": "ACK"}

    assert alice_api.post("order", {**order, "price": "290"}).json() == {"code": -1013, "msg": "Filter failure: PERCENT_PRICE"}
    assert alice_api.post("order", {**order, "price": "140"}).status_code == 200
