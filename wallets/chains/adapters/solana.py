"""Solana (SOL) through the JSON-RPC API.

Deposits: System Program ``Transfer`` instructions to our (seeded) addresses in successful
transactions, index = instruction index; scanned at ``confirmed`` commitment, credited once the
slot is ``finalized``. Skipped slots have no block (the scanner steps over them).
Withdrawals: a legacy one-instruction message (System ``Transfer``) signed with ed25519
(PyNaCl); the recent blockhash bounds its life — once the chain is past ``lastValidBlockHeight``
an unsent transaction can never land, and only then may a new one be signed.
SPL tokens are not supported yet.
"""
from __future__ import annotations

import base64
import json
import struct
import urllib.error
import urllib.request
from itertools import count

import base58
from django.views.decorators.debug import sensitive_variables
from nacl.signing import SigningKey

from wallets.chains.adapters.base import Block, ChainAdapter, SignedTx, Transfer, TxState, Watch
from wallets.chains.errors import ChainUnavailable, TransactionExpired

SYSTEM_PROGRAM = "11111111111111111111111111111111"
SYSTEM_TRANSFER = 2
SKIPPED_SLOT_CODES = {-32007, -32009, -32004}  # skipped / missing in long-term storage / not available


class SolanaRpcError(Exception):
    def __init__(self, error: dict) -> None:
        super().__init__(error.get("message", "error"))
        self.code = int(error.get("code", 0))
        self.message = str(error.get("message", ""))


def shortvec(n: int) -> bytes:
    """Solana's compact-u16 length prefix."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def system_transfer_message(*, payer: str, to: str, lamports: int, recent_blockhash: str) -> bytes:
    """A legacy message with one System ``Transfer`` from ``payer`` (the only signer) to ``to``."""
    keys = [base58.b58decode(payer), base58.b58decode(to), base58.b58decode(SYSTEM_PROGRAM)]
    header = bytes([1, 0, 1])  # 1 signature; 0 read-only signed; 1 read-only unsigned (the program)
    data = struct.pack("<IQ", SYSTEM_TRANSFER, lamports)
    instruction = bytes([2]) + shortvec(2) + bytes([0, 1]) + shortvec(len(data)) + data
    return header + shortvec(len(keys)) + b"".join(keys) + base58.b58decode(recent_blockhash) + shortvec(1) + instruction


class SolanaAdapter(ChainAdapter):
    chain = "SOL"

    def __init__(self, url: str) -> None:
        self.url = url
        self._ids = count(1)

    def rpc(self, method: str, params: list | None = None):
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                payload = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise ChainUnavailable(f"Solana node error: {exc}") from None
        if payload.get("error"):
            raise SolanaRpcError(payload["error"])
        return payload["result"]

    def head_height(self) -> int:
        return int(self.rpc("getSlot", [{"commitment": "confirmed"}]))

    def final_height(self, head: int) -> int:
        return int(self.rpc("getSlot", [{"commitment": "finalized"}]))

    def _block(self, slot: int) -> dict | None:
        try:
            return self.rpc(
                "getBlock",
                [slot, {"encoding": "json", "transactionDetails": "full", "rewards": False, "commitment": "confirmed", "maxSupportedTransactionVersion": 0}],
            )
        except SolanaRpcError as exc:
            if exc.code in SKIPPED_SLOT_CODES:
                return None
            raise ChainUnavailable(f"Solana getBlock({slot}): {exc.message}") from None

    def block_hash(self, height: int) -> str | None:
        block = self._block(height)
        return block["blockhash"] if block else None

    def block(self, height: int, watch: Watch) -> Block | None:
        block = self._block(height)
        if block is None:
            return None
        transfers: list[Transfer] = []
        for item in block.get("transactions", []):
            if (item.get("meta") or {}).get("err") is not None:
                continue
            tx = item["transaction"]
            keys = tx["message"]["accountKeys"]
            for position, ins in enumerate(tx["message"]["instructions"]):
                if keys[ins["programIdIndex"]] != SYSTEM_PROGRAM or len(ins["accounts"]) != 2:
                    continue
                data = base58.b58decode(ins["data"])
                if len(data) != 12 or struct.unpack_from("<I", data)[0] != SYSTEM_TRANSFER:
                    continue
                to = keys[ins["accounts"][1]]
                lamports = struct.unpack_from("<Q", data, 4)[0]
                if to in watch.addresses and lamports > 0:
                    transfers.append(Transfer(tx["signatures"][0], position, to, lamports, from_address=keys[ins["accounts"][0]]))
        return Block(height=height, hash=block["blockhash"], parent_hash=block.get("previousBlockhash", ""), transfers=transfers)

    def balance(self, address: str, contract: str = "") -> int:
        return int(self.rpc("getBalance", [address, {"commitment": "finalized"}])["value"])

    @sensitive_variables()
    def sign_transfer(self, *, private_key: str, from_address: str, to: str, amount_base: int, contract: str, nonce: int | None) -> SignedTx:
        if contract:
            raise ChainUnavailable("SPL token withdrawals are not supported.")
        latest = self.rpc("getLatestBlockhash", [{"commitment": "finalized"}])["value"]
        message = system_transfer_message(payer=from_address, to=to, lamports=amount_base, recent_blockhash=latest["blockhash"])
        signature = SigningKey(bytes.fromhex(private_key)).sign(message).signature
        raw = base64.b64encode(shortvec(1) + signature + message).decode()
        return SignedTx(
            raw=raw,
            txid=base58.b58encode(signature).decode(),
            nonce=json.dumps({"blockhash": latest["blockhash"], "last_valid_block_height": latest["lastValidBlockHeight"]}),
        )

    def _last_valid(self, raw: str) -> tuple[str, str]:
        wire = base64.b64decode(raw)
        signature = base58.b58encode(wire[1:65]).decode()
        message = wire[65:]
        n_keys = message[3]  # < 128 keys: one-byte shortvec
        blockhash = base58.b58encode(message[4 + 32 * n_keys : 4 + 32 * n_keys + 32]).decode()
        return signature, blockhash

    def broadcast(self, raw: str) -> str:
        signature, blockhash = self._last_valid(raw)
        try:
            return self.rpc("sendTransaction", [raw, {"encoding": "base64", "preflightCommitment": "confirmed"}])
        except SolanaRpcError as exc:
            if "already been processed" in exc.message or "AlreadyProcessed" in exc.message:
                return signature
            if "Blockhash not found" in exc.message or "BlockhashNotFound" in exc.message:
                valid = self.rpc("isBlockhashValid", [blockhash, {"commitment": "processed"}])["value"]
                if not valid and not self.tx_state(signature).found:
                    raise TransactionExpired(txid=signature) from None
            raise ChainUnavailable(f"Solana broadcast refused: {exc.message}") from None

    def tx_state(self, txid: str) -> TxState:
        status = self.rpc("getSignatureStatuses", [[txid], {"searchTransactionHistory": True}])["value"][0]
        if status is None:
            return TxState(found=False)
        head = self.head_height()
        slot = int(status["slot"])
        return TxState(
            found=True,
            success=status.get("err") is None,
            block_height=slot,
            confirmations=self.confirmations_for(slot, head),
            final=status.get("confirmationStatus") == "finalized",
        )
