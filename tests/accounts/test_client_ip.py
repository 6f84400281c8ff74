"""One client-address rule (accounts.network.client_ip) for throttles, form rate limits, the
audit log and API-key allow-lists, driven by the trusted-proxy count (DRF ``NUM_PROXIES``)."""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts import services
from accounts.audit import AuditAction, AuditLog
from accounts.network import client_ip, client_ip_resolve
from accounts.signing import sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def proxies(settings):
    def set_count(n: int) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": n}

    return set_count


def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(proxies):
    proxies(0)
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert client_ip(request) == "10.0.0.1"


def test_behind_n_proxies_the_client_is_n_hops_from_the_right(proxies):
    assert client_ip_resolve(peer="10.0.0.1", forwarded_for="6.6.6.6, 203.0.113.9", num_proxies=1) == "203.0.113.9"
    assert client_ip_resolve(peer="10.0.0.1", forwarded_for="6.6.6.6, 203.0.113.9, 10.0.0.5", num_proxies=2) == "203.0.113.9"
    assert client_ip_resolve(peer="10.0.0.1", forwarded_for="not-an-ip", num_proxies=1) is None
    assert client_ip_resolve(peer=None, forwarded_for=None, num_proxies=0) is None


def test_a_scope_and_a_request_give_the_same_address(proxies):
    proxies(1)
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    scope = {"client": ["10.0.0.1", 1234], "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9")]}
    assert client_ip(request) == client_ip(scope) == "203.0.113.9"


def test_api_throttle_cannot_be_dodged_with_a_spoofed_forwarded_for(proxies):
    """DRF's default (NUM_PROXIES unset) trusted the whole header: each request with a new
    X-Forwarded-For got a fresh throttle bucket."""
    proxies(0)
    client = APIClient()
    answers = [
        client.post("/api/v1/auth/password-reset", {"email": "x@example.com"}, format="json", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
        for i in range(7)
    ]
    assert answers[:5] == [202] * 5 and answers[-1] == 429


def test_form_rate_limit_uses_the_forwarded_client_behind_a_trusted_proxy(client, proxies):
    """Behind one proxy every request has the proxy's REMOTE_ADDR; the form limit must count
    per client, not per proxy (django-ratelimit reads accounts.network too)."""
    proxies(1)
    answers = [
        client.post("/password-reset/", {"email": "x@example.com"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
        for i in range(8)
    ]
    assert 429 not in answers
    same = [client.post("/password-reset/", {"email": "x@example.com"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.200").status_code for _ in range(7)]
    assert same[-1] == 429


def test_audit_rows_record_the_forwarded_client_behind_a_trusted_proxy(user, proxies):
    proxies(1)
    APIClient().post("/api/v1/auth/login", {"email": user.email, "password": "wrong-password-1"}, format="json",
                     REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    row = AuditLog.objects.filter(action=AuditAction.LOGIN_FAILED).latest("id")
    assert row.ip == "203.0.113.9"


def test_http_api_key_allow_list_checks_the_forwarded_client(user, proxies):
    api_key, secret = services.api_key_create(user=user, label="bot", permissions=["read"], ip_allowlist=["203.0.113.7"])

    def get(forwarded: str):
        query = urlencode({"timestamp": int(time.time() * 1000)})
        return APIClient().get(f"/api/v1/me?{query}&signature={sign(secret, query)}", HTTP_X_MBX_APIKEY=api_key.key,
                               REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    proxies(1)
    assert get("203.0.113.7").status_code == 200
    assert get("203.0.113.7, 10.9.9.9").status_code == 403  # the client wrote the left part
    proxies(0)
    assert get("203.0.113.7").status_code == 403
