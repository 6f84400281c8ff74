"""Deposits, withdrawals and user/KYC changes reach the outbox in the saving transaction, on the
account's (or user's) own stream, gap-free."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from events.models import OutboxEvent
from events.outbox import account_stream, user_stream
from tests.chains.fakes import FakeAdapter, FakeChain
from wallets.chains.adapters import adapter_override
from wallets.chains.models import Deposit, Withdrawal
from wallets.chains.services import deposit_address_get_or_create, deposits_scan, withdrawal_request
from wallets.services import user_account

pytestmark = [pytest.mark.postgres]


def _events(stream, event_type):
    return list(OutboxEvent.objects.filter(stream=stream, event_type=event_type).order_by("seq"))


def test_a_credited_deposit_is_one_event_on_the_account_stream(alice, chain_assets):
    chain = FakeChain("ev-dep")
    chain.mine(5)
    eth = FakeAdapter(chain, "ETH", confirmations=3)
    address = deposit_address_get_or_create(user=alice, chain="ETH").address
    deposits_scan(chain="ETH", adapter=eth)
    chain.send(to=address, amount=2 * 10**18, txid="0xev", index=-1)
    chain.mine(3)
    deposits_scan(chain="ETH", adapter=eth)
    deposit = Deposit.objects.get()
    [event] = _events(account_stream(user_account(alice).pk), "deposit.credited")
    assert event.payload["deposit_id"] == deposit.pk and event.payload["amount"] == "1.99"
    assert event.payload["txid"] == "0xev"
    seqs = list(OutboxEvent.objects.filter(stream=event.stream).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_each_withdrawal_state_change_is_an_event_in_order(alice, assets, fund, chain_assets, fake, adapter, django_capture_on_commit_callbacks):
    fund(alice, assets["ETH"], "10")
    with adapter_override("ETH", lambda: adapter), django_capture_on_commit_callbacks(execute=True):
        w = withdrawal_request(user=alice, chain_asset=chain_assets["ETH"], address="0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", amount=Decimal("0.1"))
    w = Withdrawal.objects.get(pk=w.pk)
    statuses = [e.payload["status"] for e in _events(account_stream(user_account(alice).pk), "withdrawal.updated")]
    assert statuses[0] == "approved" and statuses[-1] == w.status == "broadcast"  # below the approval threshold
    assert len(statuses) >= 3, statuses


def test_a_kyc_change_is_an_event_and_a_rolled_back_one_is_not(make_user):
    user = make_user("kyc@example.com")
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            user.kyc_tier = 3
            user.save(update_fields=["kyc_tier"])
            raise RuntimeError("rolled back")
    events = _events(user_stream(user.pk), "user.updated")
    assert [e.payload["change"] for e in events] == ["registered", "email_verified_at,kyc_tier"]
    assert events[-1].payload["attributes"]["kyc_tier"] == "2"
    assert [e.seq for e in events] == [1, 2]
