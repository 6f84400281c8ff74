"""The scanner credits every deposit exactly once: re-scans, duplicate runs, crashes and reorgs
(against the in-process FakeChain; the same on anvil and litecoind in their own modules)."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from accounts.audit import AuditLog
from wallets.chains.faults import SimulatedCrash
from wallets.chains.models import ChainCursor, Deposit, DepositStatus, ScannedBlock
from wallets.chains.services import deposit_address_get_or_create, deposits_scan
from wallets.models import Balance, JournalEvent, SystemAccountKind

from .fakes import FakeAdapter, FakeChain

WEI = 10**18


@pytest.fixture
def fake():
    chain = FakeChain("eth-fake")
    chain.mine(5)
    return chain


@pytest.fixture
def adapter(fake):
    return FakeAdapter(fake, "ETH", confirmations=3)


@pytest.fixture
def alice_addr(alice, chain_assets):
    return deposit_address_get_or_create(user=alice, chain="ETH").address


def available(user, symbol):
    row = Balance.objects.filter(account__user=user, asset__symbol=symbol).first()
    return row.available if row else Decimal(0)


def system_available(kind, symbol):
    row = Balance.objects.filter(account__system_kind=kind, asset__symbol=symbol).first()
    return row.available if row else Decimal(0)


def test_deposit_moves_detected_confirming_credited_net_of_the_half_percent_fee(fake, adapter, alice, alice_addr):
    deposits_scan(chain="ETH", adapter=adapter)  # cursor starts at the head
    fake.send(to=alice_addr, amount=2 * WEI, txid="0xaa", index=-1)
    fake.mine()
    deposits_scan(chain="ETH", adapter=adapter)
    deposit = Deposit.objects.get()
    assert deposit.status == DepositStatus.DETECTED and deposit.confirmations == 1
    fake.mine()
    deposits_scan(chain="ETH", adapter=adapter)
    deposit.refresh_from_db()
    assert deposit.status == DepositStatus.CONFIRMING and deposit.confirmations == 2
    assert available(alice, "ETH") == 0
    fake.mine()
    result = deposits_scan(chain="ETH", adapter=adapter)
    deposit.refresh_from_db()
    assert result.credited == 1 and deposit.status == DepositStatus.CREDITED
    assert deposit.fee == Decimal("0.01") and deposit.credited_amount == Decimal("1.99")
    assert available(alice, "ETH") == Decimal("1.99")
    assert system_available(SystemAccountKind.FEES, "ETH") == Decimal("0.01")
    assert system_available(SystemAccountKind.DEPOSITS_CLEARING, "ETH") == Decimal("-2")
    assert JournalEvent.objects.filter(idempotency_key="deposit:ETH:0xaa:-1").count() == 1
    assert AuditLog.objects.filter(action="deposit_credited", target=f"deposit:{deposit.pk}").exists()


def test_the_scanner_records_the_sending_address_surveillance_links_by(fake, adapter, alice, alice_addr):
    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to=alice_addr, amount=WEI, txid="0xa1", index=-1, sender="0x" + "ab" * 20)
    fake.mine()
    deposits_scan(chain="ETH", adapter=adapter)
    assert Deposit.objects.get().from_address == "0x" + "ab" * 20


def test_rescanning_from_an_old_cursor_never_credits_twice(fake, adapter, alice, alice_addr):
    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to=alice_addr, amount=WEI, txid="0xbb", index=-1)
    fake.mine(4)
    deposits_scan(chain="ETH", adapter=adapter)
    assert available(alice, "ETH") == Decimal("0.995")
    # An operator rewinds the cursor (or a backup is restored): everything is scanned again.
    ChainCursor.objects.update(height=1, hash=fake.blocks[1].hash)
    ScannedBlock.objects.filter(height__gt=1).delete()
    deposits_scan(chain="ETH", adapter=adapter)
    assert Deposit.objects.count() == 1
    assert available(alice, "ETH") == Decimal("0.995")


def test_running_the_scan_task_twice_credits_once(fake, adapter, alice, alice_addr, django_capture_on_commit_callbacks):
    from wallets.chains.adapters import adapter_override
    from wallets.chains.tasks import deposits_scan_task

    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to=alice_addr, amount=WEI, txid="0xcc", index=-1)
    fake.mine(3)
    with adapter_override("ETH", lambda: adapter):
        deposits_scan_task.delay("ETH")
        deposits_scan_task.delay("ETH")
        deposits_scan_task.apply(args=["ETH"])
    assert Deposit.objects.get().status == DepositStatus.CREDITED
    assert available(alice, "ETH") == Decimal("0.995")


def test_a_crash_after_a_block_commits_then_a_rerun_credits_once(fake, adapter, alice, alice_addr, monkeypatch):
    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to=alice_addr, amount=WEI, txid="0xdd", index=-1)
    fake.mine(3)
    monkeypatch.setenv("KK99_CHAINS_FAULT", "scan_after_block")
    with pytest.raises(SimulatedCrash):
        deposits_scan(chain="ETH", adapter=adapter)
    assert Deposit.objects.get().status == DepositStatus.DETECTED  # recorded, not credited yet
    monkeypatch.delenv("KK99_CHAINS_FAULT")
    deposits_scan(chain="ETH", adapter=adapter)
    deposits_scan(chain="ETH", adapter=adapter)
    assert available(alice, "ETH") == Decimal("0.995")
    assert JournalEvent.objects.filter(kind="deposit").count() == 1


def test_a_reorg_before_finality_orphans_the_deposit_and_never_credits_it(fake, adapter, alice, alice_addr):
    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to=alice_addr, amount=WEI, txid="0xee", index=-1)
    fake.mine(2)
    deposits_scan(chain="ETH", adapter=adapter)
    assert Deposit.objects.get().status == DepositStatus.CONFIRMING
    fake.fork(2)  # the two blocks vanish; the transaction is gone
    fake.mine(5)
    result = deposits_scan(chain="ETH", adapter=adapter)
    assert result.reorgs >= 1
    assert Deposit.objects.get().status == DepositStatus.ORPHANED
    assert available(alice, "ETH") == 0
    assert ChainCursor.objects.get().hash == fake.blocks[-1].hash


def test_a_reorg_to_a_longer_branch_is_found_by_the_parent_hash(fake, adapter, alice, alice_addr):
    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to=alice_addr, amount=WEI, txid="0xef", index=-1)
    fake.mine(1)
    deposits_scan(chain="ETH", adapter=adapter)
    fake.fork(1)
    fake.mine(6)  # the new branch is longer: only the parent hash of the next block tells
    deposits_scan(chain="ETH", adapter=adapter)
    assert Deposit.objects.get().status == DepositStatus.ORPHANED
    assert available(alice, "ETH") == 0


def test_a_transaction_that_reappears_in_the_new_branch_is_credited_once(fake, adapter, alice, alice_addr):
    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to=alice_addr, amount=WEI, txid="0xff", index=-1)
    fake.mine(2)
    deposits_scan(chain="ETH", adapter=adapter)
    fake.fork(2, keep_txs=True)  # back to the mempool, mined again in a different block
    fake.mine(4)
    deposits_scan(chain="ETH", adapter=adapter)
    deposit = Deposit.objects.get()
    assert deposit.status == DepositStatus.CREDITED
    assert deposit.block_hash == fake.find("0xff").hash
    assert available(alice, "ETH") == Decimal("0.995")


def test_transfers_to_unknown_addresses_and_assets_are_ignored(fake, adapter, alice, alice_addr):
    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to="0x" + "11" * 20, amount=WEI, index=-1)
    fake.send(to=alice_addr, amount=5, contract="0x" + "22" * 20, index=3)  # a token we do not list
    fake.mine(3)
    deposits_scan(chain="ETH", adapter=adapter)
    assert not Deposit.objects.exists()


def test_dust_below_the_ledger_precision_is_not_credited(fake, adapter, alice, alice_addr):
    deposits_scan(chain="ETH", adapter=adapter)
    fake.send(to=alice_addr, amount=1, txid="0x01", index=-1)  # 1 wei; the ledger keeps 8 decimals
    fake.mine(3)
    deposits_scan(chain="ETH", adapter=adapter)
    assert Deposit.objects.get().status == DepositStatus.IGNORED
    assert available(alice, "ETH") == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_scanners_on_postgres_credit_each_deposit_once(alice, chain_assets):
    fake = FakeChain("eth-race")
    fake.mine(3)
    address = deposit_address_get_or_create(user=alice, chain="ETH").address
    deposits_scan(chain="ETH", adapter=FakeAdapter(fake, "ETH", 3))
    for n in range(5):
        fake.send(to=address, amount=WEI, txid=f"0xrace{n}", index=-1)
        fake.mine()
    fake.mine(3)
    errors = []

    def run():
        try:
            deposits_scan(chain="ETH", adapter=FakeAdapter(fake, "ETH", 3))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Deposit.objects.filter(status=DepositStatus.CREDITED).count() == 5
    assert available(alice, "ETH") == Decimal("4.975")
    assert JournalEvent.objects.filter(kind="deposit").count() == 5
