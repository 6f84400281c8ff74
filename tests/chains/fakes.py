"""In-process stand-ins for chains without a local node.

* :class:`FakeChain` — a tiny block chain in memory (blocks with hashes and parents, transfers,
  reorgs) plus :class:`FakeAdapter`, a ChainAdapter over it, for fast scanner tests.
* :class:`TronHttpFake` — TRON's HTTP API (``/wallet/getnowblock``, ``getblockbynum``,
  ``/walletsolidity/getnowblock``, ``broadcasttransaction``, ``gettransactioninfobyid`` …) in
  the shapes of the official documentation, served over real HTTP on 127.0.0.1.
* :class:`SolanaRpcFake` — Solana JSON-RPC (``getSlot``, ``getBlock``, ``getLatestBlockhash``,
  ``sendTransaction``, ``getSignatureStatuses`` …), likewise; it verifies ed25519 signatures.
"""
from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import base58
from nacl.signing import VerifyKey

from wallets.chains.adapters.base import Block, ChainAdapter, SignedTx, Transfer, TxState, Watch


def _h(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


@dataclass
class FakeBlock:
    height: int
    hash: str
    parent: str
    txs: list[dict] = field(default_factory=list)  # {"txid", "index", "to", "amount", "contract"}


class FakeChain:
    """Blocks 0..n; ``pending`` transfers go into the next mined block. ``fork`` replaces the top."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.salt = 0
        self.blocks: list[FakeBlock] = [FakeBlock(0, _h(name, "genesis"), "")]
        self.pending: list[dict] = []
        self.broadcasts: list[str] = []
        self.solid_lag = 0
        self.lock = threading.RLock()

    @property
    def head(self) -> int:
        return self.blocks[-1].height

    def mine(self, n: int = 1) -> None:
        with self.lock:
            for _ in range(n):
                parent = self.blocks[-1]
                height = parent.height + 1
                self.blocks.append(FakeBlock(height, _h(self.name, height, parent.hash, self.salt, len(self.pending)), parent.hash, self.pending))
                self.pending = []

    def send(self, *, to: str, amount: int, txid: str | None = None, index: int = 0, contract: str = "", sender: str = "") -> str:
        txid = txid or _h("tx", to, amount, time.time_ns())[:64]
        self.pending.append({"txid": txid, "index": index, "to": to, "amount": amount, "contract": contract, "from": sender})
        return txid

    def fork(self, depth: int, *, keep_txs: bool = False) -> list[dict]:
        """Drop the top ``depth`` blocks (their transfers go back to pending when ``keep_txs``)."""
        with self.lock:
            dropped = self.blocks[-depth:]
            del self.blocks[-depth:]
            self.salt += 1
            txs = [tx for b in dropped for tx in b.txs]
            self.pending = txs if keep_txs else []
            return txs

    def find(self, txid: str) -> FakeBlock | None:
        for block in self.blocks:
            if any(tx["txid"] == txid for tx in block.txs):
                return block
        return None


class FakeAdapter(ChainAdapter):
    """A ChainAdapter over a FakeChain. Counts signatures; ``broadcast`` puts the tx in pending."""

    def __init__(self, fake: FakeChain, chain: str = "ETH", confirmations: int = 3) -> None:
        self.fake = fake
        self.chain = chain
        self.confirmations = confirmations
        self.signed: list[SignedTx] = []
        self.avoid_outpoints = frozenset()
        self.fail_txids: set[str] = set()

    def head_height(self) -> int:
        return self.fake.head

    def final_height(self, head: int) -> int:
        return head - self.confirmations + 1

    def block_hash(self, height: int) -> str | None:
        return self.fake.blocks[height].hash if 0 <= height <= self.fake.head else None

    def block(self, height: int, watch: Watch) -> Block | None:
        if height > self.fake.head:
            return None
        b = self.fake.blocks[height]
        transfers = [
            Transfer(tx["txid"], tx["index"], tx["to"], tx["amount"], tx["contract"], from_address=tx.get("from", ""))
            for tx in b.txs
            if tx["to"].lower() in {a.lower() for a in watch.addresses}
        ]
        return Block(b.height, b.hash, b.parent, transfers)

    def balance(self, address: str, contract: str = "") -> int:
        return 10**30

    def next_nonce(self, address: str) -> int | None:
        return 0 if self.chain == "ETH" else None

    def sign_transfer(self, *, private_key, from_address, to, amount_base, contract, nonce) -> SignedTx:
        raw = json.dumps({"to": to, "amount": amount_base, "contract": contract, "nonce": nonce, "n": len(self.signed)})
        signed = SignedTx(raw=raw, txid=_h("signed", raw)[:64], nonce=str(nonce))
        self.signed.append(signed)
        return signed

    def broadcast(self, raw: str) -> str:
        txid = _h("signed", raw)[:64]
        self.fake.broadcasts.append(txid)
        if not self.fake.find(txid) and not any(tx["txid"] == txid for tx in self.fake.pending):
            body = json.loads(raw)
            self.fake.pending.append({"txid": txid, "index": 0, "to": body["to"], "amount": body["amount"], "contract": body["contract"]})
        return txid

    def tx_state(self, txid: str) -> TxState:
        block = self.fake.find(txid)
        if block is None:
            return TxState(found=any(tx["txid"] == txid for tx in self.fake.pending))
        head = self.fake.head
        return TxState(True, txid not in self.fail_txids, block.height, head - block.height + 1, block.height <= self.final_height(head))


# --- HTTP fakes ---------------------------------------------------------------------------


class _Server:
    def __init__(self, handler) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, payload = handler(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        outer.requests = []

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _tron_block_id(height: int, digest: str) -> str:
    return format(height, "016x") + digest[16:64]


class TronHttpFake:
    """TRON full-node HTTP API over a FakeChain (``visible=true`` base58 addresses)."""

    def __init__(self) -> None:
        self.chain = FakeChain("tron")
        self.chain.solid_lag = 19
        self.txs: dict[str, dict] = {}  # txid -> full tx JSON
        self.expired_refused = 0
        self.server = _Server(self.handle)
        self.url = self.server.url

    def _block_json(self, b: FakeBlock) -> dict:
        txs = []
        for tx in b.txs:
            full = self.txs.get(tx["txid"])
            if full is None:
                if tx["contract"]:
                    data = "a9059cbb" + base58.b58decode_check(tx["to"]).hex()[2:].rjust(64, "0") + format(tx["amount"], "064x")
                    value = {"owner_address": "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8", "contract_address": tx["contract"], "data": data}
                    contract = {"type": "TriggerSmartContract", "parameter": {"value": value, "type_url": "type.googleapis.com/protocol.TriggerSmartContract"}}
                else:
                    value = {"owner_address": "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8", "to_address": tx["to"], "amount": tx["amount"]}
                    contract = {"type": "TransferContract", "parameter": {"value": value, "type_url": "type.googleapis.com/protocol.TransferContract"}}
                full = {"txID": tx["txid"], "raw_data": {"contract": [contract], "expiration": 0, "timestamp": 0}, "signature": ["00"], "ret": [{"contractRet": "SUCCESS"}]}
            txs.append(full)
        block = {"blockID": _tron_block_id(b.height, b.hash), "block_header": {"raw_data": {"number": b.height, "parentHash": _tron_block_id(b.height - 1, b.parent) if b.parent else "", "timestamp": 0}}}
        if txs:
            block["transactions"] = txs
        return block

    def handle(self, path: str, body: dict):
        c = self.chain
        with c.lock:
            if path == "/wallet/getnowblock":
                return 200, self._block_json(c.blocks[-1])
            if path == "/walletsolidity/getnowblock":
                return 200, self._block_json(c.blocks[max(0, c.head - c.solid_lag)])
            if path == "/wallet/getblockbynum":
                n = int(body["num"])
                return 200, self._block_json(c.blocks[n]) if 0 <= n <= c.head else {}
            if path == "/wallet/broadcasttransaction":
                txid = body["txID"]
                if body["raw_data"]["expiration"] <= int(time.time() * 1000):
                    self.expired_refused += 1
                    return 200, {"code": "TRANSACTION_EXPIRATION_ERROR", "message": "expired"}
                if txid in self.txs:
                    return 200, {"code": "DUP_TRANSACTION_ERROR", "txid": txid}
                self.txs[txid] = {**body, "ret": [{"contractRet": "SUCCESS"}]}
                c.broadcasts.append(txid)
                value = body["raw_data"]["contract"][0]["parameter"]["value"]
                c.pending.append({"txid": txid, "index": 0, "to": value.get("to_address", ""), "amount": value.get("amount", 0), "contract": ""})
                return 200, {"result": True, "txid": txid}
            if path == "/wallet/gettransactioninfobyid":
                block = c.find(body["value"])
                return 200, ({"id": body["value"], "blockNumber": block.height, "receipt": {"net_usage": 268}} if block else {})
            if path == "/wallet/gettransactionbyid":
                tx = self.txs.get(body["value"])
                return 200, tx or {}
            if path == "/wallet/getaccount":
                return 200, {"address": body["address"], "balance": 5_000_000_000}
            if path == "/wallet/getnodeinfo":
                return 200, {"solidityBlock": f"Num:{c.head},ID:{_tron_block_id(c.head, c.blocks[-1].hash)}"}
        return 404, {"Error": f"unknown path {path}"}

    def close(self) -> None:
        self.server.close()


class SolanaRpcFake:
    """Solana JSON-RPC over a FakeChain; slots in ``skipped`` have no block."""

    def __init__(self) -> None:
        self.chain = FakeChain("solana")
        self.finalized_lag = 31
        self.skipped: set[int] = set()
        self.signatures: dict[str, dict] = {}
        self.server = _Server(self.handle)
        self.url = self.server.url

    def blockhash(self, b: FakeBlock) -> str:
        return base58.b58encode(bytes.fromhex(b.hash)).decode()

    def _finalized(self) -> int:
        return max(0, self.chain.head - self.finalized_lag)

    def _parent(self, slot: int) -> FakeBlock:
        s = slot - 1
        while s > 0 and s in self.skipped:
            s -= 1
        return self.chain.blocks[s]

    def _block(self, slot: int) -> dict:
        b = self.chain.blocks[slot]
        txs = []
        for tx in b.txs:
            data = base58.b58encode(struct.pack("<IQ", 2, tx["amount"])).decode()
            txs.append(
                {
                    "meta": {"err": None, "fee": 5000},
                    "transaction": {
                        "signatures": [tx["txid"]],
                        "message": {
                            "accountKeys": ["9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin", tx["to"], "11111111111111111111111111111111"],
                            "instructions": [{"programIdIndex": 2, "accounts": [0, 1], "data": data}],
                            "recentBlockhash": self.blockhash(self._parent(slot)),
                        },
                    },
                }
            )
        return {"blockhash": self.blockhash(b), "previousBlockhash": self.blockhash(self._parent(slot)), "parentSlot": self._parent(slot).height, "blockHeight": slot, "transactions": txs}

    def _result(self, rid, result):
        return 200, {"jsonrpc": "2.0", "id": rid, "result": result}

    def _error(self, rid, code, message):
        return 200, {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}

    def handle(self, path: str, body: dict):
        c, rid, method, params = self.chain, body.get("id"), body.get("method"), body.get("params", [])
        with c.lock:
            if method == "getSlot":
                commitment = (params[0] if params else {}).get("commitment", "finalized")
                return self._result(rid, self._finalized() if commitment == "finalized" else c.head)
            if method == "getBlock":
                slot = params[0]
                if slot > c.head:
                    return self._error(rid, -32004, f"Block not available for slot {slot}")
                if slot in self.skipped:
                    return self._error(rid, -32007, f"Slot {slot} was skipped, or missing due to ledger jump to recent snapshot")
                return self._result(rid, self._block(slot))
            if method == "getLatestBlockhash":
                b = c.blocks[self._finalized()]
                return self._result(rid, {"context": {"slot": c.head}, "value": {"blockhash": self.blockhash(b), "lastValidBlockHeight": b.height + 150}})
            if method == "isBlockhashValid":
                valid = any(self.blockhash(b) == params[0] and c.head <= b.height + 150 for b in c.blocks)
                return self._result(rid, {"context": {"slot": c.head}, "value": valid})
            if method == "sendTransaction":
                wire = base64.b64decode(params[0])
                signature, message = wire[1:65], wire[65:]
                n_keys = message[3]
                keys = [message[4 + 32 * i : 36 + 32 * i] for i in range(n_keys)]
                VerifyKey(keys[0]).verify(message, signature)  # raises on a bad signature
                sig = base58.b58encode(signature).decode()
                if sig in self.signatures:
                    return self._error(rid, -32002, "Transaction simulation failed: This transaction has already been processed")
                blockhash = base58.b58encode(message[4 + 32 * n_keys : 36 + 32 * n_keys]).decode()
                if not any(self.blockhash(b) == blockhash and c.head <= b.height + 150 for b in c.blocks):
                    return self._error(rid, -32002, "Transaction simulation failed: Blockhash not found")
                ins = message[4 + 32 * n_keys + 32 + 1 :]
                lamports = struct.unpack_from("<Q", ins, 1 + 1 + 2 + 1 + 4)[0]
                self.signatures[sig] = {"to": base58.b58encode(keys[1]).decode(), "lamports": lamports}
                c.broadcasts.append(sig)
                c.pending.append({"txid": sig, "index": 0, "to": base58.b58encode(keys[1]).decode(), "amount": lamports, "contract": ""})
                return self._result(rid, sig)
            if method == "getSignatureStatuses":
                out = []
                for sig in params[0]:
                    block = c.find(sig)
                    if block is None:
                        out.append(None)
                    else:
                        final = block.height <= self._finalized()
                        out.append({"slot": block.height, "confirmations": None if final else c.head - block.height, "err": None, "confirmationStatus": "finalized" if final else "confirmed"})
                return self._result(rid, {"context": {"slot": c.head}, "value": out})
            if method == "getBalance":
                return self._result(rid, {"context": {"slot": c.head}, "value": 10**12})
        return self._error(rid, -32601, "Method not found")

    def close(self) -> None:
        self.server.close()


def bal(user, symbol):
    """(available, locked) of ``user`` in ``symbol``; zeros when no balance row exists."""
    from decimal import Decimal

    from wallets.models import Balance

    row = Balance.objects.filter(account__user=user, asset__symbol=symbol).first()
    return (row.available, row.locked) if row else (Decimal(0), Decimal(0))
