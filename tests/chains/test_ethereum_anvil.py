"""Ethereum and ERC-20 against a real anvil node: deposits credited after 12 confirmations,
a reorg made with evm_snapshot/evm_revert, and withdrawals signed with a key read from Vault."""
from __future__ import annotations

import json
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from wallets.chains.faults import SimulatedCrash
from wallets.chains.models import ChainCursor, Deposit, DepositStatus, WithdrawalStatus
from wallets.chains.services import deposit_address_get_or_create, deposits_scan, withdrawal_process, withdrawal_request, withdrawal_track
from wallets.chains.vault import secret_write, vault_reset
from wallets.models import Balance

from .conftest import tool

CONTRACTS = Path(__file__).parent / "contracts"
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture(scope="session")
def w3(anvil_node):
    return Web3(Web3.HTTPProvider(anvil_node["url"]))


@pytest.fixture(scope="session")
def token_contract(w3):
    """The test ERC-20, compiled from contracts/TestToken.sol by solc (npm) and deployed."""
    solcjs = tool("solcjs")
    if solcjs is None:
        pytest.skip("solc (npm) could not be installed: the ERC-20 tests need it")
    out = Path(tempfile.mkdtemp(prefix="kk99-solc-"))
    subprocess.run([solcjs, "--bin", "--abi", "--optimize", "-o", str(out), "TestToken.sol"], cwd=CONTRACTS, check=True, capture_output=True, timeout=120)
    abi = json.loads((out / "TestToken_sol_KK99TestToken.abi").read_text())
    bytecode = (out / "TestToken_sol_KK99TestToken.bin").read_text().strip()
    deployer = w3.eth.accounts[0]
    tx = w3.eth.contract(abi=abi, bytecode=bytecode).constructor(10**15).transact({"from": deployer})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    return w3.eth.contract(address=receipt["contractAddress"], abi=abi)


@pytest.fixture
def eth_settings(settings, anvil_node):
    settings.KK99 = {**settings.KK99, "CHAIN_RPC_URLS": {**settings.KK99["CHAIN_RPC_URLS"], "ETH": anvil_node["url"]}}


@pytest.fixture
def usdt_on_eth(chain_assets, token_contract):
    return chain_assets["make"]("ETH", "USDT", 6, contract=token_contract.address, fee="1", minimum="5")


def mine(w3, n):
    w3.provider.make_request("anvil_mine", [hex(n)])


def available(user, symbol):
    row = Balance.objects.filter(account__user=user, asset__symbol=symbol).first()
    return row.available if row else Decimal(0)


def test_eth_deposit_is_credited_once_after_12_confirmations(w3, eth_settings, alice, chain_assets):
    address = deposit_address_get_or_create(user=alice, chain="ETH").address
    deposits_scan(chain="ETH")
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": address, "value": w3.to_wei(Decimal("1.5"), "ether")})
    mine(w3, 10)  # the deposit block + 10 = 11 confirmations
    deposits_scan(chain="ETH")
    deposit = Deposit.objects.get(user=alice)
    assert deposit.status == DepositStatus.CONFIRMING and deposit.confirmations == 11 and deposit.index == -1
    assert deposit.from_address == w3.eth.accounts[0]  # the sender, for surveillance's deposit-source links
    mine(w3, 1)
    deposits_scan(chain="ETH")
    deposits_scan(chain="ETH")
    deposit.refresh_from_db()
    assert deposit.status == DepositStatus.CREDITED
    assert available(alice, "ETH") == Decimal("1.4925")
    assert ChainCursor.objects.get(chain="ETH").height == w3.eth.block_number


def test_erc20_deposit_is_credited_by_log_index(w3, eth_settings, alice, usdt_on_eth, token_contract):
    address = deposit_address_get_or_create(user=alice, chain="ETH").address
    deposits_scan(chain="ETH")
    token_contract.functions.transfer(address, 250_000_000).transact({"from": w3.eth.accounts[0]})  # 250 TUSD
    mine(w3, 12)
    deposits_scan(chain="ETH")
    deposit = Deposit.objects.get(user=alice)
    assert deposit.asset.symbol == "USDT" and deposit.index >= 0 and deposit.amount == Decimal("250")
    assert deposit.from_address == w3.eth.accounts[0]  # the Transfer event's from
    assert deposit.status == DepositStatus.CREDITED
    assert available(alice, "USDT") == Decimal("248.75")


def test_a_reorg_made_with_evm_revert_orphans_the_unconfirmed_deposit(w3, eth_settings, alice, chain_assets):
    address = deposit_address_get_or_create(user=alice, chain="ETH").address
    deposits_scan(chain="ETH")
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": address, "value": w3.to_wei(1, "ether")})
    mine(w3, 3)
    deposits_scan(chain="ETH")
    assert Deposit.objects.get().status == DepositStatus.CONFIRMING
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
    w3.eth.send_transaction({"from": w3.eth.accounts[1], "to": w3.eth.accounts[2], "value": 1})  # a different branch
    mine(w3, 14)
    result = deposits_scan(chain="ETH")
    assert result.reorgs >= 1
    assert Deposit.objects.get().status == DepositStatus.ORPHANED
    assert available(alice, "ETH") == 0


@pytest.fixture
def hot_wallet(w3, bao_server, settings):
    """A fresh hot wallet funded on anvil, its key stored in the Vault dev server."""
    account = Account.create()
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": account.address, "value": w3.to_wei(5, "ether")})
    settings.VAULT = {**settings.VAULT, "URL": bao_server["url"], "AUTH": "token", "TOKEN": bao_server["token"], "MOUNT": "secret", "PREFIX": "kk99-anvil"}
    vault_reset()
    secret_write("chains/ETH/hot", {"private_key": account.key.hex(), "address": account.address})
    return account


def test_eth_withdrawal_is_signed_with_the_vault_key_broadcast_and_completed(w3, eth_settings, hot_wallet, alice, assets, fund, chain_assets):
    fund(alice, assets["ETH"], "2")
    before = w3.eth.get_balance(DEST)
    w = withdrawal_request(user=alice, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("0.25"))
    withdrawal_process(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.BROADCAST and w.nonce == "0"
    mine(w3, 12)
    withdrawal_track(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.COMPLETED
    assert w3.eth.get_balance(DEST) - before == w3.to_wei(Decimal("0.25"), "ether")
    assert available(alice, "ETH") == Decimal("1.749")


def test_erc20_withdrawal_transfers_the_token(w3, eth_settings, hot_wallet, alice, assets, fund, usdt_on_eth, token_contract):
    token_contract.functions.transfer(hot_wallet.address, 1_000_000_000).transact({"from": w3.eth.accounts[0]})
    fund(alice, assets["USDT"], "100")
    w = withdrawal_request(user=alice, chain_asset=usdt_on_eth, address=DEST, amount=Decimal("40"))
    before = token_contract.functions.balanceOf(DEST).call()
    withdrawal_process(withdrawal_id=w.pk)
    mine(w3, 12)
    withdrawal_track(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.COMPLETED
    assert token_contract.functions.balanceOf(DEST).call() - before == 40_000_000
    assert available(alice, "USDT") == Decimal("59")


def test_a_crash_between_signing_and_broadcast_sends_the_same_transaction_once(w3, eth_settings, hot_wallet, alice, assets, fund, chain_assets, monkeypatch):
    fund(alice, assets["ETH"], "2")
    before = w3.eth.get_balance(DEST)
    w = withdrawal_request(user=alice, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("0.3"))
    monkeypatch.setenv("KK99_CHAINS_FAULT", "withdrawal_after_sign")
    with pytest.raises(SimulatedCrash):
        withdrawal_process(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert w.status == WithdrawalStatus.SIGNED
    assert w3.eth.get_transaction_count(hot_wallet.address, "pending") == 0  # nothing was sent
    signed_tx, txid = w.signed_tx, w.txid
    monkeypatch.delenv("KK99_CHAINS_FAULT")
    withdrawal_process(withdrawal_id=w.pk)
    mine(w3, 1)
    from wallets.chains.services import withdrawal_broadcast

    withdrawal_broadcast(withdrawal_id=w.pk)  # a late duplicate re-broadcast of the same bytes
    w.refresh_from_db()
    assert (w.signed_tx, w.txid) == (signed_tx, txid)
    assert w3.to_hex(w3.eth.get_transaction(txid)["hash"]) == txid
    assert w3.eth.get_transaction_count(hot_wallet.address) == 1
    assert w3.eth.get_balance(DEST) - before == w3.to_wei(Decimal("0.3"), "ether")
