"""The Bitcoin Core JSON-RPC adapter against Debian's litecoind in regtest (a Bitcoin Core fork;
its address prefixes are the configured ``litecoin-regtest`` network): deposits after 6
confirmations, a reorg with invalidateblock, and a withdrawal signed once."""
from __future__ import annotations

from decimal import Decimal

import pytest

from wallets.chains.faults import SimulatedCrash
from wallets.chains.hd import development_secret
from wallets.chains.models import Deposit, DepositStatus, WithdrawalStatus
from wallets.chains.services import deposit_address_get_or_create, deposits_scan, withdrawal_process, withdrawal_request, withdrawal_track
from wallets.models import Balance


@pytest.fixture
def ltc(settings, litecoind_node):
    settings.KK99 = {**settings.KK99, "BTC_NETWORK": "litecoin-regtest", "CHAIN_RPC_URLS": {**settings.KK99["CHAIN_RPC_URLS"], "BTC": litecoind_node["url"]}}
    return litecoind_node


def mine(node, n=1):
    return node["rpc"]("generatetoaddress", n, node["miner"])


def available(user, symbol):
    row = Balance.objects.filter(account__user=user, asset__symbol=symbol).first()
    return row.available if row else Decimal(0)


def test_btc_deposit_is_credited_after_6_confirmations(ltc, alice, chain_assets):
    address = deposit_address_get_or_create(user=alice, chain="BTC").address
    assert address.startswith("rltc1q")
    deposits_scan(chain="BTC")
    ltc["rpc"]("sendtoaddress", address, "0.5")
    mine(ltc, 5)
    deposits_scan(chain="BTC")
    deposit = Deposit.objects.get(user=alice)
    assert deposit.status == DepositStatus.CONFIRMING and deposit.confirmations == 5 and deposit.amount == Decimal("0.5")
    mine(ltc, 1)
    deposits_scan(chain="BTC")
    deposits_scan(chain="BTC")
    deposit.refresh_from_db()
    assert deposit.status == DepositStatus.CREDITED
    assert available(alice, "BTC") == Decimal("0.4975")


def test_invalidateblock_reorg_orphans_then_the_remined_deposit_is_credited_once(ltc, alice, chain_assets):
    address = deposit_address_get_or_create(user=alice, chain="BTC").address
    deposits_scan(chain="BTC")
    txid = ltc["rpc"]("sendtoaddress", address, "0.2")
    [block] = mine(ltc, 1)
    deposits_scan(chain="BTC")
    assert Deposit.objects.get(txid=txid).block_hash == block
    ltc["rpc"]("invalidateblock", block)  # the block is gone; the tx is back in the mempool
    result = deposits_scan(chain="BTC")
    assert result.reorgs >= 1
    assert Deposit.objects.get(txid=txid).status == DepositStatus.ORPHANED
    other = ltc["rpc"]("getnewaddress", "", "bech32")  # a different coinbase: a different block
    ltc["rpc"]("generatetoaddress", 6, other)  # the new branch mines it again
    deposits_scan(chain="BTC")
    deposit = Deposit.objects.get(txid=txid)
    assert deposit.status == DepositStatus.CREDITED and deposit.block_hash != block
    assert available(alice, "BTC") == Decimal("0.199")
    ltc["rpc"]("reconsiderblock", block)  # leave the node on one branch for later tests


@pytest.fixture
def funded_hot_wallet(ltc):
    hot = development_secret("chains/BTC/hot")
    assert hot["address"].startswith("rltc1q")
    ltc["rpc"]("sendtoaddress", hot["address"], "3")
    mine(ltc, 1)
    return hot


def test_btc_withdrawal_is_signed_once_broadcast_and_completed(ltc, funded_hot_wallet, alice, assets, fund, chain_assets, monkeypatch):
    fund(alice, assets["BTC"], "1")
    destination = ltc["rpc"]("getnewaddress", "", "bech32")
    w = withdrawal_request(user=alice, chain_asset=chain_assets["BTC"], address=destination, amount=Decimal("0.01"))
    monkeypatch.setenv("KK99_CHAINS_FAULT", "withdrawal_after_sign")
    with pytest.raises(SimulatedCrash):
        withdrawal_process(withdrawal_id=w.pk)
    monkeypatch.delenv("KK99_CHAINS_FAULT")
    w.refresh_from_db()
    signed = w.signed_tx
    assert w.status == WithdrawalStatus.SIGNED and w.nonce.startswith("[")
    withdrawal_process(withdrawal_id=w.pk)
    withdrawal_process(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.BROADCAST and w.signed_tx == signed
    mine(ltc, 6)
    withdrawal_track(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.COMPLETED
    assert ltc["rpc"]("getreceivedbyaddress", destination) == Decimal("0.01")
    assert available(alice, "BTC") == Decimal("0.9899")
