"""TRON (tronpy) and Solana (JSON-RPC) adapters against in-process HTTP fakes of the official
APIs: deposits credited only when solidified / finalized, skipped slots, signed withdrawals,
and re-signing only after the old transaction has provably expired."""
from __future__ import annotations

import json
from decimal import Decimal

import base58
import pytest
from tronpy.keys import PrivateKey, Signature

from wallets.chains.hd import development_secret
from wallets.chains.models import Deposit, DepositStatus, WithdrawalStatus
from wallets.chains.services import deposit_address_get_or_create, deposits_scan, withdrawal_broadcast, withdrawal_process, withdrawal_request, withdrawal_track
from wallets.models import Balance

from .fakes import SolanaRpcFake, TronHttpFake

USDT_TRC20 = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def available(user, symbol):
    row = Balance.objects.filter(account__user=user, asset__symbol=symbol).first()
    return row.available if row else Decimal(0)


@pytest.fixture
def tron(settings):
    fake = TronHttpFake()
    fake.chain.mine(30)
    settings.KK99 = {**settings.KK99, "CHAIN_RPC_URLS": {**settings.KK99["CHAIN_RPC_URLS"], "TRX": fake.url}}
    yield fake
    fake.close()


@pytest.fixture
def solana(settings):
    fake = SolanaRpcFake()
    fake.chain.mine(40)
    settings.KK99 = {**settings.KK99, "CHAIN_RPC_URLS": {**settings.KK99["CHAIN_RPC_URLS"], "SOL": fake.url}}
    yield fake
    fake.close()


def test_trx_and_trc20_deposits_are_credited_once_solidified(tron, alice, chain_assets):
    usdt = chain_assets["make"]("TRX", "USDT", 6, contract=USDT_TRC20)
    address = deposit_address_get_or_create(user=alice, chain="TRX").address
    deposits_scan(chain="TRX")
    tron.chain.send(to=address, amount=100_000_000, txid="aa" * 32)  # 100 TRX
    tron.chain.send(to=address, amount=50_000_000, txid="bb" * 32, contract=usdt.contract)  # 50 USDT
    tron.chain.mine(5)
    deposits_scan(chain="TRX")
    assert set(Deposit.objects.values_list("status", flat=True)) == {DepositStatus.CONFIRMING}
    tron.chain.mine(15)  # the deposit block is now below the solidified block (head − 19)
    deposits_scan(chain="TRX")
    deposits_scan(chain="TRX")
    assert set(Deposit.objects.values_list("status", flat=True)) == {DepositStatus.CREDITED}
    assert available(alice, "TRX") == Decimal("99.5")
    assert available(alice, "USDT") == Decimal("49.75")
    # the sending address (owner_address) is kept for surveillance's deposit-source links
    assert set(Deposit.objects.values_list("from_address", flat=True)) == {"TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"}


def test_trx_withdrawal_is_signed_by_the_hot_key_and_broadcast_once(tron, alice, assets, fund, chain_assets):
    fund(alice, assets["TRX"], "1000")
    hot = development_secret("chains/TRX/hot")
    w = withdrawal_request(user=alice, chain_asset=chain_assets["TRX"], address=USDT_TRC20, amount=Decimal("100"))
    withdrawal_process(withdrawal_id=w.pk)
    withdrawal_broadcast(withdrawal_id=w.pk)  # duplicate: the node answers DUP_TRANSACTION_ERROR
    w.refresh_from_db()
    body = json.loads(w.signed_tx)
    assert w.status == WithdrawalStatus.BROADCAST and tron.chain.broadcasts == [w.txid]
    assert PrivateKey(bytes.fromhex(hot["private_key"])).public_key.verify_msg_hash(bytes.fromhex(w.txid), Signature(bytes.fromhex(body["signature"][0])))
    assert body["raw_data"]["contract"][0]["parameter"]["value"]["amount"] == 100_000_000
    tron.chain.mine(21)
    withdrawal_track(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.COMPLETED
    assert available(alice, "TRX") == Decimal("899")


def test_an_expired_unsent_tron_transaction_is_re_signed_not_reused(tron, alice, assets, fund, chain_assets, monkeypatch):
    from wallets.chains.faults import SimulatedCrash

    fund(alice, assets["TRX"], "1000")
    w = withdrawal_request(user=alice, chain_asset=chain_assets["TRX"], address=USDT_TRC20, amount=Decimal("100"))
    monkeypatch.setenv("KK99_CHAINS_FAULT", "withdrawal_after_sign")
    with pytest.raises(SimulatedCrash):
        withdrawal_process(withdrawal_id=w.pk)
    monkeypatch.delenv("KK99_CHAINS_FAULT")
    w.refresh_from_db()
    first_txid = w.txid
    body = json.loads(w.signed_tx)
    body["raw_data"]["expiration"] = 1  # as if the worker stayed down past the expiration
    type(w).objects.filter(pk=w.pk).update(signed_tx=json.dumps(body))
    withdrawal_process(withdrawal_id=w.pk)  # expired and unknown to the chain: back to approved
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.APPROVED and not w.signed_tx
    withdrawal_process(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.BROADCAST and w.txid != first_txid
    assert tron.chain.broadcasts == [w.txid]


def test_sol_deposit_is_credited_when_finalized_across_skipped_slots(solana, alice, chain_assets):
    address = deposit_address_get_or_create(user=alice, chain="SOL").address
    deposits_scan(chain="SOL")
    solana.chain.mine(2)
    solana.skipped.update({41, 42})
    solana.chain.send(to=address, amount=2_000_000_000, txid="5" * 87)
    solana.chain.mine(1)  # slot 43
    solana.chain.mine(3)
    deposits_scan(chain="SOL")
    deposit = Deposit.objects.get()
    assert deposit.block_height == 43 and deposit.status == DepositStatus.CONFIRMING
    assert deposit.from_address == "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"  # the transfer's source account
    solana.chain.mine(31)
    deposits_scan(chain="SOL")
    deposit.refresh_from_db()
    assert deposit.status == DepositStatus.CREDITED
    assert available(alice, "SOL") == Decimal("1.99")


def test_a_scan_that_ends_on_a_skipped_slot_is_not_mistaken_for_a_reorg(solana, alice, chain_assets):
    deposit_address_get_or_create(user=alice, chain="SOL")
    deposits_scan(chain="SOL")
    solana.chain.mine(3)
    solana.skipped.add(43)  # the head slot has no block
    first = deposits_scan(chain="SOL")
    second = deposits_scan(chain="SOL")
    assert first.reorgs == second.reorgs == 0 and second.height == 43


def test_sol_withdrawal_is_a_valid_ed25519_signed_transfer_sent_once(solana, alice, assets, fund, chain_assets):
    fund(alice, assets["SOL"], "10")
    destination = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
    w = withdrawal_request(user=alice, chain_asset=chain_assets["SOL"], address=destination, amount=Decimal("1.5"))
    withdrawal_process(withdrawal_id=w.pk)  # the fake verifies the signature
    withdrawal_broadcast(withdrawal_id=w.pk)  # "already been processed": fine
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.BROADCAST
    assert solana.signatures[w.txid] == {"to": destination, "lamports": 1_500_000_000}
    assert solana.chain.broadcasts == [w.txid]
    assert len(base58.b58decode(w.txid)) == 64
    solana.chain.mine(40)
    withdrawal_track(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.COMPLETED
    assert available(alice, "SOL") == Decimal("8.499")
