"""A real process killed (os._exit, as SIGKILL) between signing and broadcasting: the restarted
work broadcasts the recorded transaction and never signs a second one (PostgreSQL + anvil)."""
from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.db import connection
from web3 import Web3

from wallets.chains.hd import development_secret
from wallets.chains.models import Withdrawal, WithdrawalStatus
from wallets.chains.services import withdrawal_process, withdrawal_request

from .conftest import ROOT

DEST = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"
CHILD = """
import django, os, sys
django.setup()
from wallets.chains.services import withdrawal_process
withdrawal_process(withdrawal_id=int(sys.argv[1]))
print("not reached")
"""


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigkill_between_sign_and_broadcast_then_restart_sends_one_transaction(anvil_node, settings, alice, assets, fund, chain_assets, monkeypatch):
    monkeypatch.setattr("wallets.chains.services._schedule_processing", lambda pk: None)  # the child process does the work
    settings.KK99 = {**settings.KK99, "CHAIN_RPC_URLS": {**settings.KK99["CHAIN_RPC_URLS"], "ETH": anvil_node["url"]}}
    w3 = Web3(Web3.HTTPProvider(anvil_node["url"]))
    hot = development_secret("chains/ETH/hot")  # the child process reads the same (fallback) key
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": hot["address"], "value": w3.to_wei(3, "ether")})
    fund(alice, assets["ETH"], "1")
    w = withdrawal_request(user=alice, chain_asset=chain_assets["ETH"], address=DEST, amount=Decimal("0.2"))
    nonce_before = w3.eth.get_transaction_count(hot["address"])
    balance_before = w3.eth.get_balance(DEST)

    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kk99.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "KK99_ETH_RPC_URL": anvil_node["url"],
        "KK99_CHAINS_FAULT": "withdrawal_after_sign",
        "KK99_CHAINS_FAULT_HARD": "1",
    }
    child = subprocess.run([sys.executable, "-c", CHILD, str(w.pk)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == 137, child.stderr[-2000:]
    assert "not reached" not in child.stdout

    w.refresh_from_db()
    assert w.status == WithdrawalStatus.SIGNED and w.signed_tx
    assert w3.eth.get_transaction_count(hot["address"], "pending") == nonce_before  # nothing sent
    signed_tx, txid = w.signed_tx, w.txid

    withdrawal_process(withdrawal_id=w.pk)  # the restarted worker
    withdrawal_process(withdrawal_id=w.pk)
    w.refresh_from_db()
    assert (w.signed_tx, w.txid, w.status) == (signed_tx, txid, WithdrawalStatus.BROADCAST)
    assert w3.eth.get_transaction_count(hot["address"]) == nonce_before + 1
    assert w3.eth.get_balance(DEST) - balance_before == w3.to_wei(Decimal("0.2"), "ether")
    assert Withdrawal.objects.count() == 1
