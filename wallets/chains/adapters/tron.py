"""TRON (TRX and TRC-20 tokens) through tronpy and the node's HTTP API.

Deposits: ``TransferContract`` transactions to our addresses (TRX, index 0) and
``TriggerSmartContract`` calls of a watched TRC-20 contract's ``transfer(address,uint256)``
(index 0), both only with ``contractRet == SUCCESS``. A block is final once it is solidified
(``walletsolidity/getnowblock``). Withdrawals are built offline by tronpy against the latest
solidified block and signed locally; a TRON transaction expires (60 s), after which it can never
be included — the withdrawal service may then safely sign a new one.
"""
from __future__ import annotations

import json
import time

import base58
from tronpy import Tron
from tronpy.keys import PrivateKey, to_hex_address
from tronpy.providers import HTTPProvider
from django.views.decorators.debug import sensitive_variables

from wallets.chains.adapters.base import Block, ChainAdapter, SignedTx, Transfer, TxState, Watch
from wallets.chains.errors import ChainUnavailable, TransactionExpired

TRC20_TRANSFER = "a9059cbb"
FEE_LIMIT_SUN = 30_000_000


def _b58(hex_address: str) -> str:
    return base58.b58encode_check(bytes.fromhex(hex_address)).decode()


def trc20_transfer_data(to: str, amount: int) -> str:
    return TRC20_TRANSFER + to_hex_address(to)[2:].rjust(64, "0") + format(amount, "064x")


class TronAdapter(ChainAdapter):
    chain = "TRX"

    def __init__(self, url: str) -> None:
        self.client = Tron(provider=HTTPProvider(url, timeout=10.0))

    def _req(self, path: str, params: dict | None = None) -> dict:
        try:
            return self.client.provider.make_request(path, params or {})
        except Exception as exc:  # requests/httpx errors, bad JSON
            raise ChainUnavailable(f"TRON node error on {path}: {exc}") from None

    def head_height(self) -> int:
        return int(self._req("wallet/getnowblock", {"visible": True})["block_header"]["raw_data"]["number"])

    def solid_block(self) -> dict:
        return self._req("walletsolidity/getnowblock", {"visible": True})

    def final_height(self, head: int) -> int:
        return int(self.solid_block()["block_header"]["raw_data"]["number"])

    def _block(self, height: int) -> dict | None:
        block = self._req("wallet/getblockbynum", {"num": height, "visible": True})
        return block if block.get("blockID") else None

    def block_hash(self, height: int) -> str | None:
        block = self._block(height)
        return block["blockID"] if block else None

    def block(self, height: int, watch: Watch) -> Block | None:
        block = self._block(height)
        if block is None:
            return None
        transfers: list[Transfer] = []
        for tx in block.get("transactions", []):
            ret = (tx.get("ret") or [{}])[0].get("contractRet", "SUCCESS")
            contracts = tx.get("raw_data", {}).get("contract", [])
            if ret != "SUCCESS" or len(contracts) != 1:
                continue
            kind, value = contracts[0]["type"], contracts[0]["parameter"]["value"]
            if kind == "TransferContract" and value.get("to_address") in watch.addresses and int(value.get("amount", 0)) > 0:
                transfers.append(Transfer(tx["txID"], 0, value["to_address"], int(value["amount"]), from_address=value.get("owner_address", "")))
            elif kind == "TriggerSmartContract" and value.get("contract_address") in watch.contracts:
                data = value.get("data", "")
                if len(data) == 8 + 128 and data.startswith(TRC20_TRANSFER):
                    to = _b58("41" + data[8 + 24 : 8 + 64])
                    amount = int(data[8 + 64 :], 16)
                    if to in watch.addresses and amount > 0:
                        transfers.append(Transfer(tx["txID"], 0, to, amount, value["contract_address"], from_address=value.get("owner_address", "")))
        raw = block["block_header"]["raw_data"]
        return Block(height=int(raw["number"]), hash=block["blockID"], parent_hash=raw.get("parentHash", ""), transfers=transfers)

    def balance(self, address: str, contract: str = "") -> int:
        if not contract:
            return int(self._req("wallet/getaccount", {"address": address, "visible": True}).get("balance", 0))
        result = self._req(
            "wallet/triggerconstantcontract",
            {
                "owner_address": address,
                "contract_address": contract,
                "function_selector": "balanceOf(address)",
                "parameter": to_hex_address(address)[2:].rjust(64, "0"),
                "visible": True,
            },
        )
        return int((result.get("constant_result") or ["0"])[0] or "0", 16)

    @sensitive_variables()
    def sign_transfer(self, *, private_key: str, from_address: str, to: str, amount_base: int, contract: str, nonce: int | None) -> SignedTx:
        ref_block_id = self.solid_block()["blockID"]
        if contract:
            builder = self.client.trx._build_transaction(
                "TriggerSmartContract",
                {
                    "owner_address": to_hex_address(from_address),
                    "contract_address": to_hex_address(contract),
                    "data": trc20_transfer_data(to, amount_base),
                    "call_value": 0,
                },
            ).fee_limit(FEE_LIMIT_SUN)
        else:
            builder = self.client.trx.transfer(from_address, to, amount_base)
        tx = builder.build(offline=True, ref_block_id=ref_block_id).sign(PrivateKey(bytes.fromhex(private_key)))
        body = tx.to_json()
        return SignedTx(raw=json.dumps(body), txid=tx.txid, nonce=json.dumps({"ref_block": ref_block_id, "expiration": body["raw_data"]["expiration"]}))

    def broadcast(self, raw: str) -> str:
        body = json.loads(raw)
        txid = body["txID"]
        if int(body["raw_data"]["expiration"]) <= int(time.time() * 1000) and not self.tx_state(txid).found:
            raise TransactionExpired(txid=txid)
        result = self._req("wallet/broadcasttransaction", body)
        code = result.get("code", "")
        if result.get("result") or code == "DUP_TRANSACTION_ERROR":
            return txid
        if code == "TRANSACTION_EXPIRATION_ERROR":
            raise TransactionExpired(txid=txid)
        raise ChainUnavailable(f"TRON broadcast refused: {code} {result.get('message', '')}")

    def tx_state(self, txid: str) -> TxState:
        info = self._req("wallet/gettransactioninfobyid", {"value": txid, "visible": True})
        if not info or "blockNumber" not in info:
            known = self._req("wallet/gettransactionbyid", {"value": txid, "visible": True})
            return TxState(found=bool(known and known.get("txID")))
        height = int(info["blockNumber"])
        success = info.get("receipt", {}).get("result", "SUCCESS") == "SUCCESS" and info.get("result") != "FAILED"
        head = self.head_height()
        return TxState(found=True, success=success, block_height=height, confirmations=self.confirmations_for(height, head), final=height <= self.final_height(head))
