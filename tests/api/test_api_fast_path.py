"""/api/v3 runs a lean middleware chain (kk99.middleware.ApiFastPathMiddleware) and a
pipelined request-weight charge: what it skips must not matter, what it keeps must hold."""
from __future__ import annotations

from django.core.cache import cache
from django.test import override_settings

from accounts.models import ApiKey
from accounts.signing import API_KEY_CACHE_VERSION_KEY, _key_cache
from kk99.middleware import API_CONTENT_SECURITY_POLICY


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
