"""Sensitive values never reach a debug page or a log.

The finding: with DEBUG on and Celery in-process, a withdrawal that failed while signing put
the hot-wallet private key in the 500 page returned to the user. Django's own filter ignores
``@sensitive_variables`` when DEBUG is on; kk99.debug.KK99ExceptionReporterFilter does not."""
from __future__ import annotations

import logging
import sys
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django.views.debug import get_default_exception_reporter_filter, technical_500_response

from tests.chains.fakes import FakeAdapter, FakeChain
from wallets.chains.adapters import adapter_override
from wallets.chains.models import ChainAsset
from wallets.chains.services import withdrawal_request, withdrawal_sign
from wallets.chains.vault import hot_wallet_read, vault_reset
from wallets.models import Asset
from wallets.services import ledger_credit

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture(autouse=True)
def _fresh_reporter_filter():
    """Django caches the filter instance; a test that changes the setting must not leak it."""
    get_default_exception_reporter_filter.cache_clear()
    yield
    get_default_exception_reporter_filter.cache_clear()


class FailingSigner(FakeAdapter):
    """Signs like a real adapter would start to — holding the key — then the node library fails."""

    def sign_transfer(self, *, private_key, from_address, to, amount_base, contract, nonce):
        key_bytes = bytes.fromhex(private_key.removeprefix("0x"))  # noqa: F841 — a local the debug page would show
        raise RuntimeError("signing library failed")


@pytest.fixture
def withdrawing_user(settings, django_user_model):
    settings.DEBUG = True
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.VAULT = {**settings.VAULT, "URL": ""}
    settings.KK99 = {**settings.KK99, "CHAINS_ENABLED": ["ETH"], "VAULT_ALLOW_LOCAL_FALLBACK": True, "CHAIN_SECRETS_FALLBACK": {}}
    vault_reset()
    eth = Asset.objects.get_or_create(symbol="ETH", defaults={"name": "Ether", "precision": 8})[0]
    chain_asset = ChainAsset.objects.create(chain="ETH", asset=eth, decimals=18, withdrawal_fee=Decimal("0.001"), min_withdrawal=Decimal("0.01"))
    user = django_user_model.objects.create_user(email="signer-victim@example.com", password="pw-not-used-123", kyc_tier=2, email_verified_at=timezone.now())
    ledger_credit(user=user, asset=eth, amount=Decimal("1"), idempotency_key=f"error-reports:{user.pk}", kind="issuance", counter="issuance")
    yield user, chain_asset
    vault_reset()


def _fail_a_withdrawal_while_signing(client, user, chain_asset):
    """The signing step (what the Celery task runs) fails inside the adapter while it holds the
    key; the technical 500 page Django would render for that exception (DEBUG on) is returned.
    Withdrawal requests no longer answer 500 when the post-commit signing hook fails, so the
    page is rendered from the signing exception itself, as a synchronous caller would see it."""
    chain = FakeChain("err")
    chain.mine(2)
    request = RequestFactory().post(reverse("chains:withdraw"))
    request.user = user
    with adapter_override("ETH", lambda: FailingSigner(chain, "ETH", confirmations=3)):
        withdrawal = withdrawal_request(user=user, chain_asset=chain_asset, address=DEST, amount=Decimal("0.1"))
        try:
            withdrawal_sign(withdrawal_id=withdrawal.pk)
        except RuntimeError:
            logging.getLogger("django.request").error("Internal Server Error: %s", request.path, exc_info=True)
            return technical_500_response(request, *sys.exc_info())
    raise AssertionError("the failing signer did not fail")


@pytest.mark.django_db(transaction=True)  # the signing task runs on commit, inside the request
def test_a_withdrawal_failing_while_signing_shows_no_private_key_on_the_debug_page(client, withdrawing_user, settings, caplog):
    user, chain_asset = withdrawing_user
    private_key = hot_wallet_read("ETH")["private_key"]
    bare = private_key.removeprefix("0x").lower()

    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = _fail_a_withdrawal_while_signing(client, user, chain_asset)

    page = response.content.decode()
    assert response.status_code == 500
    assert "signing library failed" in page and "withdrawal_sign" in page  # the technical page of that failure
    assert bare not in page.lower()
    logged = "\n".join(r.getMessage() + str(getattr(r, "exc_text", "") or "") for r in caplog.records)
    assert bare not in logged.lower()


@pytest.mark.django_db(transaction=True)
def test_without_the_project_filter_the_same_failure_would_show_the_key(client, withdrawing_user, settings):
    """The control: proves the test above looks where the key would be."""
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = "django.views.debug.SafeExceptionReporterFilter"
    user, chain_asset = withdrawing_user
    bare = hot_wallet_read("ETH")["private_key"].removeprefix("0x").lower()
    response = _fail_a_withdrawal_while_signing(client, user, chain_asset)
    assert response.status_code == 500 and bare in response.content.decode().lower()


def test_credential_settings_are_hidden_from_error_reports(settings):
    settings.DATABASE_URL = "postgres://kk99:db-password@db/kk99"
    settings.KK99 = {**settings.KK99, "CHAIN_RPC_URLS": {"BTC": "http://kk99:rpc-password@127.0.0.1:18443"}}
    safe = get_default_exception_reporter_filter().get_safe_settings()
    text = repr(safe)
    assert "db-password" not in text and "rpc-password" not in text
