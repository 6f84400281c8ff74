"""Withdrawal rules and life cycle (FakeChain adapter): checks at request, holds, approvals,
sign-once / broadcast-again, completion and release."""
from __future__ import annotations

from decimal import Decimal

import pyotp
import pytest

from accounts.audit import AuditLog
from wallets.chains.adapters import adapter_override
from wallets.chains.errors import ChainsError, ChainsErrorCode, InvalidAddress
from wallets.chains.faults import SimulatedCrash
from wallets.chains.models import Withdrawal, WithdrawalStatus
from wallets.chains.services import (
    withdrawal_approve,
    withdrawal_process,
    withdrawal_reject,
    withdrawal_request,
    withdrawal_track,
)
from wallets.errors import InsufficientFunds
from wallets.models import Balance, SystemAccountKind

from .fakes import FakeAdapter, FakeChain, bal

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def request(user, ca, amount, address=DEST, **kw):
    return withdrawal_request(user=user, chain_asset=ca, address=address, amount=Decimal(amount), **kw)


def test_a_small_withdrawal_is_held_approved_signed_broadcast_and_completed(funded, chain_assets, fake, adapter, django_capture_on_commit_callbacks):
    with adapter_override("ETH", lambda: adapter), django_capture_on_commit_callbacks(execute=True):
        w = request(funded, chain_assets["ETH"], "0.1")  # 300 USDT < 1000: no approval
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.BROADCAST and w.signed_tx and w.nonce == "0"
    assert bal(funded, "ETH") == (Decimal("9.899"), Decimal("0.101"))
    fake.mine(3)
    withdrawal_track(withdrawal_id=w.pk, adapter=adapter)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.COMPLETED
    assert bal(funded, "ETH") == (Decimal("9.899"), Decimal("0"))
    clearing = Balance.objects.get(account__system_kind=SystemAccountKind.WITHDRAWALS_CLEARING, asset__symbol="ETH")
    fees = Balance.objects.get(account__system_kind=SystemAccountKind.FEES, asset__symbol="ETH")
    assert clearing.available == Decimal("0.1") and fees.available == Decimal("0.001")
    actions = set(AuditLog.objects.filter(target=f"withdrawal:{w.pk}").values_list("action", flat=True))
    assert {"withdrawal_requested", "withdrawal_signed", "withdrawal_broadcast", "withdrawal_completed"} <= actions


def test_frozen_accounts_cannot_withdraw(funded, chain_assets):
    funded.is_frozen = True
    funded.save(update_fields=["is_frozen"])
    with pytest.raises(ChainsError) as err:
        request(funded, chain_assets["ETH"], "0.1")
    assert err.value.code == ChainsErrorCode.WITHDRAWALS_DISABLED


def test_an_invalid_destination_address_is_refused(funded, chain_assets):
    with pytest.raises(InvalidAddress):
        request(funded, chain_assets["ETH"], "0.1", address="0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD")


def test_amounts_below_the_minimum_are_refused(funded, chain_assets):
    with pytest.raises(ChainsError) as err:
        request(funded, chain_assets["ETH"], "0.001")
    assert err.value.code == ChainsErrorCode.AMOUNT_BELOW_MINIMUM


def test_more_than_the_available_balance_is_refused_and_nothing_is_recorded(funded, chain_assets):
    with pytest.raises(InsufficientFunds):
        request(funded, chain_assets["ETH"], "10")  # + 0.001 fee
    assert not Withdrawal.objects.exists()


def test_the_kyc_tier_daily_limit_counts_earlier_withdrawals(make_user, assets, fund, chain_assets):
    user = make_user(tier=1)  # 2000 USDT a day
    fund(user, assets["ETH"], "10")
    request(user, chain_assets["ETH"], "0.4")  # ≈ 1203 USDT
    with pytest.raises(ChainsError) as err:
        request(user, chain_assets["ETH"], "0.3")
    assert err.value.code == ChainsErrorCode.WITHDRAWAL_LIMIT_EXCEEDED


def test_two_factor_code_is_required_when_enabled(funded, chain_assets):
    from accounts.services import totp_setup_begin, totp_setup_confirm

    setup = totp_setup_begin(user=funded)
    totp_setup_confirm(user=funded, code=pyotp.TOTP(setup.secret).now())
    with pytest.raises(ChainsError) as err:
        request(funded, chain_assets["ETH"], "0.1", otp="000000")
    assert err.value.code == ChainsErrorCode.SECOND_FACTOR_REQUIRED
    assert not Withdrawal.objects.exists()


def test_above_the_threshold_one_staff_approval_is_needed(funded, chain_assets, staff_members, django_capture_on_commit_callbacks):
    w = request(funded, chain_assets["ETH"], "1")  # 3003 USDT
    assert w.status == WithdrawalStatus.PENDING_APPROVAL and w.required_approvals == 1
    with adapter_override("ETH", lambda: FakeAdapter(FakeChain(), "ETH")), django_capture_on_commit_callbacks(execute=True):
        withdrawal_approve(withdrawal_id=w.pk, staff=staff_members[0])
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.BROADCAST


def test_above_the_second_threshold_two_different_staff_must_approve(funded, chain_assets, staff_members, assets, fund):
    fund(funded, assets["ETH"], "10")
    w = request(funded, chain_assets["ETH"], "4")  # 12003 USDT
    assert w.required_approvals == 2
    first, second = staff_members
    withdrawal_approve(withdrawal_id=w.pk, staff=first)
    with pytest.raises(ChainsError) as err:
        withdrawal_approve(withdrawal_id=w.pk, staff=first)
    assert err.value.code == ChainsErrorCode.APPROVAL_NOT_ALLOWED
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.PENDING_APPROVAL
    withdrawal_approve(withdrawal_id=w.pk, staff=second)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.APPROVED


def test_users_without_the_permission_cannot_approve(funded, chain_assets, make_user):
    w = request(funded, chain_assets["ETH"], "1")
    with pytest.raises(ChainsError):
        withdrawal_approve(withdrawal_id=w.pk, staff=make_user())


def test_rejection_releases_the_hold(funded, chain_assets, staff_members):
    w = request(funded, chain_assets["ETH"], "1")
    assert bal(funded, "ETH") == (Decimal("8.999"), Decimal("1.001"))
    withdrawal_reject(withdrawal_id=w.pk, staff=staff_members[0], reason="suspicious")
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.REJECTED
    assert bal(funded, "ETH") == (Decimal("10"), Decimal("0"))
    with pytest.raises(ChainsError):
        withdrawal_reject(withdrawal_id=w.pk, staff=staff_members[0], reason="again")


def test_a_transaction_failing_on_chain_fails_the_withdrawal_and_releases_the_hold(funded, chain_assets, fake, adapter):
    w = request(funded, chain_assets["ETH"], "0.1")
    withdrawal_process(withdrawal_id=w.pk, adapter=adapter)
    w.refresh_from_db()
    adapter.fail_txids.add(w.txid)
    fake.mine(3)
    withdrawal_track(withdrawal_id=w.pk, adapter=adapter)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.FAILED
    assert bal(funded, "ETH") == (Decimal("10"), Decimal("0"))


def test_a_crash_between_signing_and_broadcasting_rebroadcasts_the_same_signed_tx(funded, chain_assets, fake, adapter, monkeypatch):
    w = request(funded, chain_assets["ETH"], "0.1")
    monkeypatch.setenv("KK99_CHAINS_FAULT", "withdrawal_after_sign")
    with pytest.raises(SimulatedCrash):
        withdrawal_process(withdrawal_id=w.pk, adapter=adapter)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.SIGNED and fake.broadcasts == []
    signed_tx, txid = w.signed_tx, w.txid
    monkeypatch.delenv("KK99_CHAINS_FAULT")
    withdrawal_process(withdrawal_id=w.pk, adapter=adapter)  # the retry
    withdrawal_process(withdrawal_id=w.pk, adapter=adapter)  # and a duplicate task
    w.refresh_from_db()
    assert len(adapter.signed) == 1
    assert w.signed_tx == signed_tx and w.txid == txid and w.status == WithdrawalStatus.BROADCAST
    assert set(fake.broadcasts) == {txid}


def test_the_hot_wallet_nonce_is_never_reused(funded, chain_assets, fake, adapter):
    a = request(funded, chain_assets["ETH"], "0.1")
    b = request(funded, chain_assets["ETH"], "0.1")
    withdrawal_process(withdrawal_id=a.pk, adapter=adapter)
    withdrawal_process(withdrawal_id=b.pk, adapter=adapter)  # the node still says nonce 0
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.nonce, b.nonce) == ("0", "1")
