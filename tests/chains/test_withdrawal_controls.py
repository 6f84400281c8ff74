"""Withdrawal money controls: the review threshold applies to the rolling 24-hour total,
withdrawals are idempotent by key (service, REST API, HTML form), a failing post-commit hook
never turns a committed withdrawal into an error, and burn/zero addresses and the exchange's
own addresses are refused as destinations."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import base58
import pytest
from bip_utils import SegwitBech32Encoder
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from wallets.chains.addresses import address_is_burn
from wallets.chains.errors import ChainsError, ChainsErrorCode
from wallets.chains.models import DepositAddress, HotWallet, Withdrawal, WithdrawalStatus
from wallets.chains.services import withdrawal_reject, withdrawal_request

from .fakes import bal

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
# ETH is valued at 3,000 USDT in the test settings and its network fee is 0.001 ETH (3 USDT):
# 0.25 ETH is a 753 USDT withdrawal, 0.5 ETH a 1,503 USDT one; the review threshold is 1,000.


@pytest.fixture
def queued(monkeypatch):
    """Signing tasks queued after commit (not run)."""
    from wallets.chains import tasks

    ids: list[int] = []
    monkeypatch.setattr(tasks.withdrawal_process_task, "delay", lambda withdrawal_id: ids.append(withdrawal_id))
    return ids


def ask(user, ca, amount, address=DEST, **kw):
    return withdrawal_request(user=user, chain_asset=ca, address=address, amount=Decimal(amount), **kw)


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


# --- the review threshold applies to the rolling 24-hour total -------------------------------------


def test_two_750_usdt_withdrawals_hit_the_same_review_as_one_1500(funded, make_user, fund, assets, chain_assets):
    first = ask(funded, chain_assets["ETH"], "0.25")
    second = ask(funded, chain_assets["ETH"], "0.25")
    other = make_user()
    fund(other, assets["ETH"], "1")
    single = ask(other, chain_assets["ETH"], "0.5")

    assert first.status == WithdrawalStatus.APPROVED and first.required_approvals == 0
    assert single.status == WithdrawalStatus.PENDING_APPROVAL and single.required_approvals == 1
    assert second.status == WithdrawalStatus.PENDING_APPROVAL and second.required_approvals == 1


def test_the_24_hour_total_reaching_the_dual_threshold_needs_two_approvals(funded, chain_assets, settings):
    settings.KK99 = {**settings.KK99, "WITHDRAWAL_DUAL_APPROVAL_THRESHOLD_USDT": Decimal("2000")}
    ask(funded, chain_assets["ETH"], "0.25")
    ask(funded, chain_assets["ETH"], "0.25")
    third = ask(funded, chain_assets["ETH"], "0.25")  # 2,259 USDT in 24 hours
    assert third.required_approvals == 2


def test_rejected_and_older_withdrawals_do_not_count_toward_the_review(funded, chain_assets, staff_members):
    rejected = ask(funded, chain_assets["ETH"], "0.5")
    withdrawal_reject(withdrawal_id=rejected.pk, staff=staff_members[0], reason="no")
    old = ask(funded, chain_assets["ETH"], "0.25")
    Withdrawal.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=24, seconds=1))

    assert ask(funded, chain_assets["ETH"], "0.25").required_approvals == 0


# --- idempotency keys ----------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_same_withdrawal_and_holds_once(funded, chain_assets):
    first = ask(funded, chain_assets["ETH"], "0.1", idempotency_key="k-1")
    again = ask(funded, chain_assets["ETH"], "0.1", idempotency_key="k-1")

    assert again.pk == first.pk and getattr(again, "replayed", False)
    assert Withdrawal.objects.count() == 1
    assert bal(funded, "ETH") == (Decimal("9.899"), Decimal("0.101"))


def test_a_retry_returns_the_record_before_any_check_that_may_have_changed_since(funded, chain_assets):
    """A retry repeats the same (already used, one-time) 2FA code, or comes after a freeze:
    the replay is answered before those checks."""
    first = ask(funded, chain_assets["ETH"], "0.1", idempotency_key="k-1")
    funded.is_frozen = True  # whatever changed since, the retry answers with the record
    assert ask(funded, chain_assets["ETH"], "0.1", idempotency_key="k-1").pk == first.pk


def test_the_same_key_for_a_different_withdrawal_is_refused(funded, chain_assets):
    ask(funded, chain_assets["ETH"], "0.1", idempotency_key="k-1")
    with pytest.raises(ChainsError) as err:
        ask(funded, chain_assets["ETH"], "0.2", idempotency_key="k-1")
    assert err.value.code == ChainsErrorCode.IDEMPOTENCY_KEY_REUSED and err.value.status == 409
    assert Withdrawal.objects.count() == 1


def test_keys_are_per_user(funded, make_user, fund, assets, chain_assets):
    other = make_user()
    fund(other, assets["ETH"], "1")
    a = ask(funded, chain_assets["ETH"], "0.1", idempotency_key="same")
    b = ask(other, chain_assets["ETH"], "0.1", idempotency_key="same")
    assert a.pk != b.pk


@pytest.mark.parametrize("key", ["", "   ", "x" * 101, "bad\x00key"])
def test_an_invalid_key_is_refused(funded, chain_assets, key):
    with pytest.raises(ChainsError) as err:
        ask(funded, chain_assets["ETH"], "0.1", idempotency_key=key)
    assert err.value.code == ChainsErrorCode.IDEMPOTENCY_KEY_INVALID
    assert not Withdrawal.objects.exists()


# --- the REST API ------------------------------------------------------------------------------------------


def test_api_withdrawal_answers_201_and_a_retry_returns_the_same_record(funded, chain_assets, queued):
    body = {"asset": "ETH", "chain": "ETH", "address": DEST, "amount": "0.1"}
    first = api(funded).post("/api/v1/withdrawals/", body, format="json", HTTP_IDEMPOTENCY_KEY="a1")
    again = api(funded).post("/api/v1/withdrawals/", body, format="json", HTTP_IDEMPOTENCY_KEY="a1")

    assert first.status_code == 201, first.content
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["amount"] == "0.10000000" and first.json()["status"] == WithdrawalStatus.APPROVED
    assert Withdrawal.objects.count() == 1
    listed = api(funded).get("/api/v1/withdrawals/")
    assert [w["id"] for w in listed.json()] == [first.json()["id"]]


def test_api_withdrawal_needs_an_idempotency_key(funded, chain_assets):
    response = api(funded).post("/api/v1/withdrawals/", {"asset": "ETH", "chain": "ETH", "address": DEST, "amount": "0.1"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == ChainsErrorCode.IDEMPOTENCY_KEY_INVALID
    assert not Withdrawal.objects.exists()


def test_api_refuses_the_same_key_with_other_parameters_with_409(funded, chain_assets, queued):
    body = {"asset": "ETH", "chain": "ETH", "address": DEST, "amount": "0.1"}
    api(funded).post("/api/v1/withdrawals/", body, format="json", HTTP_IDEMPOTENCY_KEY="a1")
    response = api(funded).post("/api/v1/withdrawals/", {**body, "amount": "0.2"}, format="json", HTTP_IDEMPOTENCY_KEY="a1")
    assert response.status_code == 409 and response.json()["error"]["code"] == ChainsErrorCode.IDEMPOTENCY_KEY_REUSED


def test_api_refuses_an_asset_not_on_the_chain(funded, chain_assets):
    response = api(funded).post(
        "/api/v1/withdrawals/", {"asset": "DOGE", "chain": "ETH", "address": DEST, "amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY="a1"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == ChainsErrorCode.ASSET_NOT_ON_CHAIN


@pytest.mark.django_db(transaction=True)
def test_a_failing_post_commit_hook_still_answers_201_with_the_record(funded, chain_assets, monkeypatch):
    """The reported finding: the withdrawal committed, then signing (run in-process) raised and
    the request answered 500 — and the client's retry created a duplicate."""
    from wallets.chains import tasks

    def broken(withdrawal_id):
        raise RuntimeError("signing failed after commit")

    monkeypatch.setattr(tasks.withdrawal_process_task, "delay", broken)
    client = api(funded)
    client.raise_request_exception = True
    body = {"asset": "ETH", "chain": "ETH", "address": DEST, "amount": "0.1"}

    response = client.post("/api/v1/withdrawals/", body, format="json", HTTP_IDEMPOTENCY_KEY="hook-1")
    retry = client.post("/api/v1/withdrawals/", body, format="json", HTTP_IDEMPOTENCY_KEY="hook-1")

    assert response.status_code == 201 and retry.status_code == 201
    assert retry.json()["id"] == response.json()["id"]
    withdrawal = Withdrawal.objects.get()
    assert withdrawal.status == WithdrawalStatus.APPROVED  # the beat task signs it later


# --- the HTML form ------------------------------------------------------------------------------------------


def test_the_withdraw_form_carries_a_token_and_a_resubmission_creates_one_withdrawal(client, funded, chain_assets, queued):
    client.force_login(funded)
    token = client.get(reverse("chains:withdraw")).context["form"].initial["idempotency_key"]
    data = {"chain_asset": chain_assets["ETH"].pk, "address": DEST, "amount": "0.1", "idempotency_key": token}

    first = client.post(reverse("chains:withdraw"), data)
    again = client.post(reverse("chains:withdraw"), data)

    assert first.status_code == again.status_code == 302
    assert Withdrawal.objects.count() == 1
    assert bal(funded, "ETH") == (Decimal("9.899"), Decimal("0.101"))


# --- destinations ------------------------------------------------------------------------------------------------


def _zero_b58(version: int) -> str:
    return base58.b58encode_check(bytes([version]) + bytes(20)).decode()


BURNS = [
    ("ETH", "0x0000000000000000000000000000000000000000"),
    ("ETH", "0x000000000000000000000000000000000000dEaD"),
    ("ETH", "0x000000000000000000000000000000000000dead"),
    ("TRX", "T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb"),
    ("SOL", "11111111111111111111111111111111"),
    ("SOL", "1nc1nerator11111111111111111111111111111111"),
    ("BTC", _zero_b58(0x6F)),  # regtest P2PKH of an all-zero hash
    ("BTC", _zero_b58(0xC4)),  # regtest P2SH of an all-zero hash
    ("BTC", SegwitBech32Encoder.Encode("bcrt", 0, bytes(20))),
    ("BTC", SegwitBech32Encoder.Encode("bcrt", 0, bytes(32))),
]


@pytest.mark.parametrize(("chain", "address"), BURNS)
def test_burn_and_zero_addresses_are_refused_with_a_clear_error(make_user, fund, assets, chain_assets, chain, address):
    user = make_user()
    fund(user, assets[chain], "100000")
    amount = {"ETH": "0.1", "TRX": "20", "SOL": "0.1", "BTC": "0.01"}[chain]
    with pytest.raises(ChainsError) as err:
        ask(user, chain_assets[chain], amount, address=address)
    assert err.value.code == ChainsErrorCode.DESTINATION_NOT_ALLOWED and err.value.status == 400
    assert "burn" in err.value.message
    assert not Withdrawal.objects.exists()


@pytest.mark.parametrize(
    ("network", "address"),
    [
        ("mainnet", "1BitcoinEaterAddressDontSendf59kuE"),
        ("mainnet", "1111111111111111111114oLvT2"),
        ("mainnet", SegwitBech32Encoder.Encode("bc", 0, bytes(20))),
        ("litecoin", _zero_b58(0x30)),
        ("litecoin", SegwitBech32Encoder.Encode("ltc", 0, bytes(20))),
    ],
)
def test_bitcoin_and_litecoin_mainnet_burn_addresses_are_recognised(settings, network, address):
    settings.KK99 = {**settings.KK99, "BTC_NETWORK": network}
    assert address_is_burn(chain="BTC", address=address)


def test_ordinary_addresses_are_not_burn_addresses(settings):
    assert not address_is_burn(chain="ETH", address=DEST)
    assert not address_is_burn(chain="SOL", address="So11111111111111111111111111111111111111112")
    assert not address_is_burn(chain="TRX", address="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")
    settings.KK99 = {**settings.KK99, "BTC_NETWORK": "mainnet"}
    assert not address_is_burn(chain="BTC", address="bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")


def test_the_exchanges_own_deposit_addresses_are_refused_any_letter_case(funded, make_user, chain_assets):
    bob = make_user()
    DepositAddress.objects.create(user=bob, chain="ETH", address=DEST, derivation_index=bob.pk)
    for address in (DEST, DEST.lower()):
        with pytest.raises(ChainsError) as err:
            ask(funded, chain_assets["ETH"], "0.1", address=address)
        assert err.value.code == ChainsErrorCode.DESTINATION_NOT_ALLOWED and "own addresses" in err.value.message
    DepositAddress.objects.create(user=funded, chain="ETH", address="0x" + "ab" * 20, derivation_index=funded.pk)
    with pytest.raises(ChainsError):
        ask(funded, chain_assets["ETH"], "0.1", address="0x" + "ab" * 20)  # one's own deposit address too
    assert not Withdrawal.objects.exists()


def test_the_hot_wallet_address_is_refused(funded, chain_assets):
    HotWallet.objects.create(chain="ETH", address=DEST)
    with pytest.raises(ChainsError) as err:
        ask(funded, chain_assets["ETH"], "0.1")
    assert err.value.code == ChainsErrorCode.DESTINATION_NOT_ALLOWED


def test_api_answers_400_for_a_burn_destination(funded, chain_assets):
    response = api(funded).post(
        "/api/v1/withdrawals/",
        {"asset": "ETH", "chain": "ETH", "address": "0x0000000000000000000000000000000000000000", "amount": "0.1"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="b1",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == ChainsErrorCode.DESTINATION_NOT_ALLOWED
    assert bal(funded, "ETH") == (Decimal("10"), Decimal("0"))
