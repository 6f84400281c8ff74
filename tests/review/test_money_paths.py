"""Second-pair-of-eyes review: defects found in the money paths (each test failed before its
fix) and the real-time balance events of deposits, withdrawals and adjustments."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from wallets.audit import ledger_audit_run
from wallets.chains.adapters import adapter_override
from wallets.chains.models import Withdrawal, WithdrawalStatus
from wallets.chains.services import (
    deposit_address_get_or_create,
    deposits_scan,
    withdrawal_fail,
    withdrawal_process,
    withdrawal_reject,
    withdrawal_request,
    withdrawal_track,
)
from wallets.chains.token import token_asset, token_supply_report
from wallets.errors import AdjustmentNotAllowed
from wallets.models import JournalEvent
from wallets.services import adjustment_approve, adjustment_request

from tests.chains.fakes import bal

pytestmark = pytest.mark.django_db
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
WEI = 10**18


@pytest.fixture
def finance(make_user):
    member = make_user("finance@kk99.local", is_staff=True)
    member.user_permissions.add(Permission.objects.get(codename="adjust_balance"))
    return type(member).objects.get(pk=member.pk)


@pytest.fixture
def sent(monkeypatch):
    """Every event handed to the channel layer after commit: [(type, payload, groups)]."""
    import kk99.publish as publish

    events: list[tuple[str, dict, list[str]]] = []
    monkeypatch.setattr(publish, "_send", lambda event_type, payload, groups: events.append((event_type, payload, list(groups))))
    return events


def deltas(events, user_id):
    return [(p["asset"], Decimal(p["delta"]), Decimal(p["locked_delta"]), p["reason"]) for t, p, g in events if t == "balance.delta" and p["user_id"] == user_id]


# --- defects ------------------------------------------------------------------------------


def test_a_single_staff_member_cannot_mint_kk99_through_a_balance_adjustment(finance, alice):
    """Two-person rule: ledger_adjust used to credit KK99 out of thin air (one person), and the
    supply report then failed. Supply changes must go through request + approval."""
    kk99 = token_asset()
    with pytest.raises(AdjustmentNotAllowed):
        adjustment_request(staff=finance, user=alice, asset=kk99, amount=Decimal("1000000"), reason="oops")
    assert bal(alice, kk99.symbol) == (0, 0)
    assert token_supply_report()["ok"]
    assert not JournalEvent.objects.filter(kind="adjustment").exists()


def test_a_confirmed_withdrawal_can_never_be_failed_and_its_hold_released(funded, chain_assets, fake, adapter):
    """The coins of a CONFIRMED withdrawal are gone on chain; withdrawal_fail used to release its
    hold anyway (the user was paid twice). Only a signed/broadcast one can fail."""
    w = withdrawal_request(user=funded, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("0.1"))
    withdrawal_process(withdrawal_id=w.pk, adapter=adapter)
    Withdrawal.objects.filter(pk=w.pk).update(status=WithdrawalStatus.CONFIRMED)  # final, completion not yet run
    withdrawal_fail(withdrawal_id=w.pk, reason="late failure report")
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.CONFIRMED
    assert bal(funded, "ETH") == (Decimal("9.899"), Decimal("0.101"))
    assert not JournalEvent.objects.filter(idempotency_key=f"withdrawal:{w.pk}:release").exists()


def test_a_withdrawal_not_yet_signed_is_not_failed_by_the_chain_path(funded, chain_assets, staff_members):
    w = withdrawal_request(user=funded, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("1"))  # 3000 USDT: approval
    assert w.status == WithdrawalStatus.PENDING_APPROVAL
    withdrawal_fail(withdrawal_id=w.pk, reason="not on chain")
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.PENDING_APPROVAL
    withdrawal_reject(withdrawal_id=w.pk, staff=staff_members[0], reason="no")
    assert bal(funded, "ETH") == (Decimal("10"), Decimal("0"))
    assert ledger_audit_run().ok


# --- Task B: balance events --------------------------------------------------------------------


def test_a_credited_deposit_publishes_balance_delta_and_update_after_commit(alice, chain_assets, fake, adapter, sent, django_capture_on_commit_callbacks):
    address = deposit_address_get_or_create(user=alice, chain="ETH").address
    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to=address, amount=2 * WEI, txid="0xr1", index=-1)
    fake.mine(3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        deposits_scan(chain="ETH", adapter=adapter)
    assert sent == []  # nothing before commit
    for callback in callbacks:
        callback()
    assert deltas(sent, alice.pk) == [("ETH", Decimal("1.99"), Decimal(0), "deposit")]
    delta = next(p for t, p, g in sent if t == "balance.delta")
    assert set(delta) >= {"user_id", "asset", "delta", "time"} and isinstance(delta["time"], int)
    from kk99.publish import user_group

    assert all(g == [user_group(alice.pk)] for t, p, g in sent if t.startswith("balance."))
    assert ("balance.update", {"assets": ["ETH"]}, [user_group(alice.pk)]) in sent
    # a re-scan credits nothing and publishes nothing
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        deposits_scan(chain="ETH", adapter=adapter)
    assert deltas(sent, alice.pk) == []


def test_a_withdrawal_publishes_its_hold_and_its_completion(funded, chain_assets, fake, adapter, sent, django_capture_on_commit_callbacks):
    with adapter_override("ETH", lambda: adapter), django_capture_on_commit_callbacks(execute=True):
        w = withdrawal_request(user=funded, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("0.1"))
    assert deltas(sent, funded.pk) == [("ETH", Decimal("-0.101"), Decimal("0.101"), "withdrawal_hold")]
    sent.clear()
    fake.mine(3)
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal_track(withdrawal_id=w.pk, adapter=adapter)
    assert Withdrawal.objects.get(pk=w.pk).status == WithdrawalStatus.COMPLETED
    assert deltas(sent, funded.pk) == [("ETH", Decimal(0), Decimal("-0.101"), "withdrawal_complete")]
    assert any(t == "balance.update" for t, p, g in sent)


def test_a_rejected_withdrawal_publishes_the_release(funded, chain_assets, staff_members, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        w = withdrawal_request(user=funded, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("1"))
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal_reject(withdrawal_id=w.pk, staff=staff_members[0], reason="no")
    assert deltas(sent, funded.pk) == [("ETH", Decimal("1.001"), Decimal("-1.001"), "withdrawal_release")]


def test_a_refused_withdrawal_publishes_nothing(funded, chain_assets, sent, django_capture_on_commit_callbacks):
    from wallets.errors import InsufficientFunds

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InsufficientFunds):
        withdrawal_request(user=funded, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("15"))
    assert sent == []


def test_a_staff_adjustment_publishes_the_delta(finance, make_user, alice, assets, sent, django_capture_on_commit_callbacks):
    approver = make_user("compliance@kk99.local", is_staff=True)
    approver.user_permissions.add(Permission.objects.get(codename="adjust_balance_approve"))
    approver = type(approver).objects.get(pk=approver.pk)
    for amount, reason in ((Decimal("12.5"), "goodwill"), (Decimal("-2.5"), "reversal")):
        adjustment = adjustment_request(staff=finance, user=alice, asset=assets["USDT"], amount=amount, reason=reason)
        with django_capture_on_commit_callbacks(execute=True):
            adjustment_approve(adjustment_id=adjustment.pk, staff=approver)
    assert deltas(sent, alice.pk) == [("USDT", Decimal("12.5"), 0, "adjustment"), ("USDT", Decimal("-2.5"), 0, "adjustment")]


def test_the_user_data_stream_turns_balance_delta_into_binance_balance_update(alice):
    """The handler in trading/streams/userdata.py reads exactly these fields."""
    from asgiref.sync import async_to_sync

    from trading.streams.userdata import WsApiConsumer

    consumer = WsApiConsumer.__new__(WsApiConsumer)
    emitted = []
    consumer.subscriptions = {1: alice.pk}
    consumer._emit = lambda uid, event: emitted.append((uid, event))
    payload = {"user_id": alice.pk, "asset": "ETH", "delta": "1.99", "locked_delta": "0", "time": 1234, "reason": "deposit", "reference": "deposit:1"}
    async_to_sync(consumer.balance_delta)({"type": "balance.delta", "payload": payload})
    assert emitted == [(alice.pk, {"e": "balanceUpdate", "E": emitted[0][1]["E"], "a": "ETH", "d": "1.99", "T": 1234})]
