"""Binance-style HMAC signing: the reusable verifier and the DRF authentication/permissions."""
import time
from urllib.parse import urlencode

import pytest
from django.test import RequestFactory
from django.urls import path
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from accounts import errors, services
from accounts.models import ApiKey
from accounts.permissions import ApiKeyPermission, HasTradePermission, HasWithdrawPermission
from accounts.signing import sign, verify_signed_request

pytestmark = pytest.mark.django_db


class TradeView(APIView):
    permission_classes = [HasTradePermission]

    def post(self, request):
        return Response({"user": request.user.email, "key": request.auth.pk if isinstance(request.auth, ApiKey) else None})


class WithdrawView(APIView):
    permission_classes = [HasWithdrawPermission]

    def post(self, request):
        return Response({"ok": True})


urlpatterns = [path("t/trade", TradeView.as_view()), path("t/withdraw", WithdrawView.as_view())]


@pytest.fixture
def signing_test_urls(settings):
    settings.ROOT_URLCONF = "tests.accounts.test_signing"


@pytest.fixture
def key(user):
    api_key, secret = services.api_key_create(user=user, label="bot", permissions=["trade"])
    return api_key, secret


def now_ms() -> int:
    return int(time.time() * 1000)


def signed_query(secret: str, **params) -> str:
    params.setdefault("timestamp", now_ms())
    query = urlencode(params)
    return f"{query}&signature={sign(secret, query)}"


def test_signed_get_authenticates_and_records_last_use(key):
    api_key, secret = key
    response = APIClient().get(f"/api/v1/me?{signed_query(secret)}", HTTP_X_MBX_APIKEY=api_key.key)
    assert response.status_code == 200, response.json()
    assert response.json()["email"] == "alice@example.com"
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_verifier_refuses_parameters_split_over_query_and_body(key, user):
    api_key, secret = key
    query, body = f"symbol=BTCUSDT&timestamp={now_ms()}", "side=BUY&quantity=1"
    signature = sign(secret, query + body)
    request = RequestFactory().post(f"/x?{query}&signature={signature}", data=body, content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=api_key.key)
    with pytest.raises(errors.ParametersInQueryAndBody):
        verify_signed_request(request)


def test_signature_alone_in_the_query_with_parameters_in_the_body_is_accepted(key, user):
    api_key, secret = key
    body = f"symbol=BTCUSDT&side=BUY&quantity=1&timestamp={now_ms()}"
    request = RequestFactory().post(f"/x?signature={sign(secret, body)}", data=body, content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=api_key.key)
    assert verify_signed_request(request) == (user, api_key)


def test_signature_may_travel_in_the_form_body(key):
    api_key, secret = key
    body = f"symbol=BTCUSDT&timestamp={now_ms()}"
    request = RequestFactory().post("/x", data=f"{body}&signature={sign(secret, body)}", content_type="application/x-www-form-urlencoded", HTTP_X_MBX_APIKEY=api_key.key)
    assert verify_signed_request(request)[1] == api_key


def _get(key_value: str, query: str):
    return RequestFactory().get(f"/x?{query}", HTTP_X_MBX_APIKEY=key_value)


def test_tampered_parameter_is_bad_signature(key):
    api_key, secret = key
    query = signed_query(secret, symbol="BTCUSDT").replace("BTCUSDT", "ETHUSDT")
    with pytest.raises(errors.BadSignature):
        verify_signed_request(_get(api_key.key, query))


def test_signature_with_another_secret_is_bad_signature(key):
    api_key, _ = key
    with pytest.raises(errors.BadSignature) as info:
        verify_signed_request(_get(api_key.key, signed_query("not-the-secret")))
    assert info.value.code == "bad_signature" and info.value.status == 401


def test_expired_timestamp_is_outside_the_default_window(key):
    api_key, secret = key
    with pytest.raises(errors.TimestampOutsideRecvWindow) as info:
        verify_signed_request(_get(api_key.key, signed_query(secret, timestamp=now_ms() - 6000)))
    assert info.value.code == "timestamp_outside_recv_window"


def test_a_wider_recv_window_accepts_an_older_timestamp_and_a_narrow_one_refuses(key):
    api_key, secret = key
    old = now_ms() - 6000
    assert verify_signed_request(_get(api_key.key, signed_query(secret, timestamp=old, recvWindow=10000)))[1] == api_key
    with pytest.raises(errors.TimestampOutsideRecvWindow):
        verify_signed_request(_get(api_key.key, signed_query(secret, timestamp=now_ms() - 200, recvWindow=100)))


def test_timestamp_from_the_future_is_refused(key):
    api_key, secret = key
    with pytest.raises(errors.TimestampOutsideRecvWindow):
        verify_signed_request(_get(api_key.key, signed_query(secret, timestamp=now_ms() + 5000)))


@pytest.mark.parametrize("window", [60001, 0, -5, "abc"])
def test_recv_window_beyond_the_maximum_or_malformed_is_refused(key, window):
    api_key, secret = key
    with pytest.raises(errors.InvalidRecvWindow):
        verify_signed_request(_get(api_key.key, signed_query(secret, recvWindow=window)))


def test_missing_timestamp_or_signature_is_missing_parameter(key):
    api_key, secret = key
    query = "symbol=BTCUSDT"
    with pytest.raises(errors.MissingParameter) as info:
        verify_signed_request(_get(api_key.key, f"{query}&signature={sign(secret, query)}"))
    assert info.value.details == {"parameter": "timestamp"}
    with pytest.raises(errors.MissingParameter) as info:
        verify_signed_request(_get(api_key.key, f"timestamp={now_ms()}"))
    assert info.value.details == {"parameter": "signature"}


def test_unknown_or_revoked_key_is_invalid_api_key(key, user):
    api_key, secret = key
    with pytest.raises(errors.InvalidApiKey):
        verify_signed_request(_get("x" * 64, signed_query(secret)))
    services.api_key_revoke(api_key=api_key, actor=user)
    with pytest.raises(errors.InvalidApiKey):
        verify_signed_request(_get(api_key.key, signed_query(secret)))


def test_key_of_an_inactive_user_is_invalid(key, user):
    api_key, secret = key
    user.is_active = False
    user.save()
    with pytest.raises(errors.InvalidApiKey):
        verify_signed_request(_get(api_key.key, signed_query(secret)))


def test_ip_allow_list_refuses_other_addresses(user):
    api_key, secret = services.api_key_create(user=user, label="ip", permissions=[], ip_allowlist=["10.1.0.0/16"])
    inside = RequestFactory().get(f"/x?{signed_query(secret)}", HTTP_X_MBX_APIKEY=api_key.key, REMOTE_ADDR="10.1.2.3")
    outside = RequestFactory().get(f"/x?{signed_query(secret)}", HTTP_X_MBX_APIKEY=api_key.key, REMOTE_ADDR="10.2.0.1")
    assert verify_signed_request(inside)[1] == api_key
    with pytest.raises(errors.ApiKeyIpNotAllowed):
        verify_signed_request(outside)


def test_drf_renders_signing_errors_with_their_own_code(key):
    api_key, secret = key
    response = APIClient().get(f"/api/v1/me?{signed_query('wrong')}", HTTP_X_MBX_APIKEY=api_key.key)
    assert response.status_code == 401 and response.json()["error"]["code"] == "bad_signature"
    old = APIClient().get(f"/api/v1/me?{signed_query(secret, timestamp=now_ms() - 60000)}", HTTP_X_MBX_APIKEY=api_key.key)
    assert old.status_code == 400 and old.json()["error"]["code"] == "timestamp_outside_recv_window"


@pytest.mark.usefixtures("signing_test_urls")
def test_key_without_trade_permission_cannot_trade(user):
    api_key, secret = services.api_key_create(user=user, label="ro", permissions=[])
    response = APIClient().post(f"/t/trade?{signed_query(secret)}", HTTP_X_MBX_APIKEY=api_key.key)
    assert response.status_code == 403 and response.json()["error"]["code"] == "api_key_permission_denied"


@pytest.mark.usefixtures("signing_test_urls")
def test_key_with_trade_permission_trades_but_cannot_withdraw(key):
    api_key, secret = key
    trade = APIClient().post(f"/t/trade?{signed_query(secret)}", HTTP_X_MBX_APIKEY=api_key.key)
    withdraw = APIClient().post(f"/t/withdraw?{signed_query(secret)}", HTTP_X_MBX_APIKEY=api_key.key)
    assert trade.status_code == 200 and trade.json()["key"] == api_key.pk
    assert withdraw.status_code == 403 and withdraw.json()["error"]["code"] == "api_key_permission_denied"


@pytest.mark.usefixtures("signing_test_urls")
def test_frozen_account_cannot_trade_with_a_trade_key(key, user):
    api_key, secret = key
    services.user_freeze(user=user, actor=None)
    response = APIClient().post(f"/t/trade?{signed_query(secret)}", HTTP_X_MBX_APIKEY=api_key.key)
    assert response.status_code == 403 and response.json()["error"]["code"] == "account_frozen"


@pytest.mark.usefixtures("signing_test_urls")
def test_tier_0_account_cannot_trade_even_with_a_session(make_user):
    unverified = make_user("new@example.com", verified=False)
    client = APIClient()
    client.force_authenticate(unverified)
    response = client.post("/t/trade")
    assert response.status_code == 403 and response.json()["error"]["code"] == "trading_not_allowed"


def test_api_keys_cannot_manage_the_account(key):
    api_key, secret = key
    for method, url in [("get", "/api/v1/api-keys"), ("post", "/api/v1/2fa/setup"), ("get", "/api/v1/kyc")]:
        response = getattr(APIClient(), method)(f"{url}?{signed_query(secret)}", HTTP_X_MBX_APIKEY=api_key.key)
        assert response.status_code == 403, url
    assert ApiKey.objects.count() == 1


def test_api_key_permission_factory_rejects_unknown_names():
    with pytest.raises(ValueError):
        ApiKeyPermission("admin")


def test_key_cache_revocation_reaches_other_processes_through_the_cache_version(db, django_user_model, rf):
    """Another process's cache (simulated: entries loaded before the revoke, kept in a copy of
    the process-local dict) is dropped at its next request because the shared version moved."""
    from accounts import signing
    from accounts.services import api_key_create, api_key_revoke

    user = django_user_model.objects.create_user(email="cache@example.com", password="pw-not-used-123")
    api_key, secret = api_key_create(user=user, label="k", permissions=["trade"])
    assert signing._api_key_lookup(api_key.key) is not None
    other_process = dict(signing._key_cache)  # what another worker has cached
    assert api_key.key in other_process

    api_key_revoke(api_key=api_key, actor=user)

    signing._key_cache.update(other_process)  # that worker still holds the entry …
    assert signing._api_key_lookup(api_key.key) is None  # … but the version moved: reloaded, revoked


def test_key_cache_serves_without_a_key_lookup_until_the_ttl(db, django_user_model, settings):
    from unittest import mock

    from accounts import selectors, signing
    from accounts.services import api_key_create

    user = django_user_model.objects.create_user(email="ttl@example.com", password="pw-not-used-123")
    api_key, _ = api_key_create(user=user, label="k", permissions=["trade"])
    signing._api_key_lookup(api_key.key)
    with mock.patch.object(selectors, "api_key_get_active", side_effect=AssertionError("not cached")):
        found = signing._api_key_lookup(api_key.key)
    assert found[1].pk == api_key.pk and found[1].has_permission("trade") and found[0].pk == user.pk
    settings.KK99 = {**settings.KK99, "API_KEY_CACHE_SECONDS": 0}
    with mock.patch.object(selectors, "api_key_get_active", wraps=selectors.api_key_get_active) as lookup:
        signing._api_key_lookup(api_key.key)
    assert lookup.called
