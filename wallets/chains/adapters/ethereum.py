"""Ethereum (and ERC-20 tokens) through web3.py.

Native deposits are transactions whose ``to`` is ours, with value and a successful receipt
(index -1). ERC-20 deposits are ``Transfer`` logs of the configured token contracts fetched *by
block hash* (so they belong to exactly the block the reorg detector recorded), index = log index.
Withdrawals are EIP-1559 transactions signed locally with eth-account; the nonce is the
account nonce, so a transaction can only ever be mined once.
"""
from __future__ import annotations

from eth_account import Account
from eth_utils import keccak, to_checksum_address
from django.views.decorators.debug import sensitive_variables
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3RPCError

from wallets.chains.adapters.base import Block, ChainAdapter, SignedTx, Transfer, TxState, Watch
from wallets.chains.errors import ChainUnavailable

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TRANSFER_SELECTOR = keccak(text="transfer(address,uint256)")[:4]
BALANCE_OF_SELECTOR = keccak(text="balanceOf(address)")[:4]
NATIVE_INDEX = -1
NATIVE_GAS = 21_000
TOKEN_GAS = 100_000


def _hex(value) -> str:
    return Web3.to_hex(value)


class EthereumAdapter(ChainAdapter):
    chain = "ETH"

    def __init__(self, url: str, confirmations: int) -> None:
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        self.confirmations = int(confirmations)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (BlockNotFound, TransactionNotFound):
            raise
        except (OSError, Web3RPCError, ValueError) as exc:
            raise ChainUnavailable(f"Ethereum node error: {exc}") from None

    def head_height(self) -> int:
        return self._call(lambda: self.w3.eth.block_number)

    def final_height(self, head: int) -> int:
        return head - self.confirmations + 1

    def block_hash(self, height: int) -> str | None:
        try:
            return _hex(self._call(self.w3.eth.get_block, height)["hash"])
        except BlockNotFound:
            return None

    def block(self, height: int, watch: Watch) -> Block | None:
        try:
            block = self._call(self.w3.eth.get_block, height, full_transactions=True)
        except BlockNotFound:
            return None
        block_hash = _hex(block["hash"])
        transfers: list[Transfer] = []
        for tx in block["transactions"]:
            to = tx.get("to")
            if to and tx["value"] > 0 and to.lower() in watch.addresses:
                receipt = self._call(self.w3.eth.get_transaction_receipt, tx["hash"])
                if receipt["status"] == 1 and _hex(receipt["blockHash"]) == block_hash:
                    transfers.append(
                        Transfer(_hex(tx["hash"]), NATIVE_INDEX, to_checksum_address(to), int(tx["value"]), from_address=to_checksum_address(tx["from"]))
                    )
        if watch.contracts:
            logs = self._call(
                self.w3.eth.get_logs,
                {"blockHash": block["hash"], "address": [to_checksum_address(c) for c in watch.contracts], "topics": [TRANSFER_TOPIC]},
            )
            for log in logs:
                topics = log["topics"]
                if len(topics) != 3 or log.get("removed"):
                    continue
                to = "0x" + bytes(topics[2])[-20:].hex()
                sender = to_checksum_address("0x" + bytes(topics[1])[-20:].hex())
                if to in watch.addresses:
                    amount = int.from_bytes(bytes(log["data"]), "big")
                    if amount > 0:
                        transfers.append(
                            Transfer(
                                _hex(log["transactionHash"]), int(log["logIndex"]), to_checksum_address(to), amount, to_checksum_address(log["address"]),
                                from_address=sender,
                            )
                        )
        return Block(height=int(block["number"]), hash=block_hash, parent_hash=_hex(block["parentHash"]), transfers=transfers)

    def balance(self, address: str, contract: str = "") -> int:
        address = to_checksum_address(address)
        if not contract:
            return int(self._call(self.w3.eth.get_balance, address))
        data = BALANCE_OF_SELECTOR + bytes(12) + bytes.fromhex(address[2:])
        result = self._call(self.w3.eth.call, {"to": to_checksum_address(contract), "data": _hex(data)})
        return int.from_bytes(bytes(result), "big")

    def next_nonce(self, address: str) -> int:
        return int(self._call(self.w3.eth.get_transaction_count, to_checksum_address(address), "pending"))

    @sensitive_variables()
    def sign_transfer(self, *, private_key: str, from_address: str, to: str, amount_base: int, contract: str, nonce: int | None) -> SignedTx:
        if nonce is None:
            raise ValueError("An Ethereum transaction needs a nonce.")
        latest = self._call(self.w3.eth.get_block, "latest")
        base_fee = int(latest.get("baseFeePerGas") or 0)
        priority = int(self._call(lambda: self.w3.eth.max_priority_fee))
        tx = {
            "chainId": int(self._call(lambda: self.w3.eth.chain_id)),
            "nonce": int(nonce),
            "maxPriorityFeePerGas": priority,
            "maxFeePerGas": 2 * base_fee + priority,
            "type": 2,
        }
        if contract:
            data = TRANSFER_SELECTOR + bytes(12) + bytes.fromhex(to_checksum_address(to)[2:]) + int(amount_base).to_bytes(32, "big")
            tx.update({"to": to_checksum_address(contract), "value": 0, "data": _hex(data), "gas": TOKEN_GAS})
        else:
            tx.update({"to": to_checksum_address(to), "value": int(amount_base), "gas": NATIVE_GAS})
        signed = Account.sign_transaction(tx, private_key)
        return SignedTx(raw=_hex(signed.raw_transaction), txid=_hex(signed.hash), nonce=str(nonce))

    def broadcast(self, raw: str) -> str:
        txid = _hex(keccak(hexstr=raw))
        try:
            return _hex(self.w3.eth.send_raw_transaction(raw))
        except (Web3RPCError, ValueError) as exc:
            # "already known" / "nonce too low" after a crash: fine if the node has *these* bytes.
            try:
                self.w3.eth.get_transaction(txid)
                return txid
            except TransactionNotFound:
                raise ChainUnavailable(f"Ethereum broadcast refused: {exc}") from None
        except OSError as exc:
            raise ChainUnavailable(f"Ethereum node error: {exc}") from None

    def tx_state(self, txid: str) -> TxState:
        try:
            receipt = self._call(self.w3.eth.get_transaction_receipt, txid)
        except TransactionNotFound:
            try:
                self._call(self.w3.eth.get_transaction, txid)
                return TxState(found=True)
            except TransactionNotFound:
                return TxState(found=False)
        head = self.head_height()
        height = int(receipt["blockNumber"])
        return TxState(
            found=True,
            success=receipt["status"] == 1,
            block_height=height,
            confirmations=self.confirmations_for(height, head),
            final=height <= self.final_height(head),
        )
