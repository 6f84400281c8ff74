"""Bitcoin (and Bitcoin Core forks such as Litecoin) through python-bitcoinlib's JSON-RPC proxy.

Amounts arrive as Decimal (python-bitcoinlib parses JSON floats as Decimal) and become satoshis
exactly. Address prefixes come from the configured network, so the same adapter speaks to
Bitcoin Core regtest and Litecoin regtest. Deposits: each output paying one of our addresses,
index = output number. Withdrawals: the hot wallet's confirmed coins are found with
``scantxoutset`` (no node wallet needed), spent in a transaction signed with
``signrawtransactionwithkey``; the spent outpoints are the "nonce": two different transactions
spending them cannot both confirm. ``tx_state`` needs the node to run with ``-txindex``.
"""
from __future__ import annotations

import json
from decimal import Decimal

from bitcoin.rpc import JSONRPCError, RawProxy
from django.views.decorators.debug import sensitive_variables

from wallets.chains.adapters.base import Block, ChainAdapter, SignedTx, Transfer, TxState, Watch
from wallets.chains.errors import ChainsError, ChainsErrorCode, ChainUnavailable
from wallets.chains.units import from_base_units, to_base_units

DUST_SATS = 546
DEFAULT_FEE_RATE_SAT_VB = 10
_ALREADY_KNOWN = ("already in block chain", "txn-already-known", "txn-already-in-mempool", "already have transaction")


def _vbytes(n_in: int, n_out: int) -> int:
    return 11 + 68 * n_in + 31 * n_out  # P2WPKH inputs and outputs


def _first_input_address(tx: dict) -> str:
    """The address that funded the first input, when the node includes prevouts (``getblock``
    verbosity 3); "" otherwise — surveillance then links by the transaction alone."""
    for vin in tx.get("vin", [])[:1]:
        script = (vin.get("prevout") or {}).get("scriptPubKey", {})
        return script.get("address", "")
    return ""


class BitcoinAdapter(ChainAdapter):
    chain = "BTC"

    def __init__(self, url: str, confirmations: int, avoid_outpoints: frozenset[str] = frozenset()) -> None:
        self.url = url
        self.confirmations = int(confirmations)
        self.avoid_outpoints = avoid_outpoints
        self._proxy: RawProxy | None = None

    def rpc(self, method: str, *args):
        for attempt in (0, 1):
            try:
                if self._proxy is None:
                    self._proxy = RawProxy(service_url=self.url, timeout=30)
                return self._proxy._call(method, *args)
            except JSONRPCError:
                raise
            except (OSError, ValueError) as exc:  # connection dropped: one retry on a new connection
                self._proxy = None
                if attempt:
                    raise ChainUnavailable(f"Bitcoin node error: {exc}") from None

    @staticmethod
    def _code(exc: JSONRPCError) -> int:
        return int(getattr(exc, "error", {}).get("code", 0))

    def head_height(self) -> int:
        return int(self.rpc("getblockcount"))

    def final_height(self, head: int) -> int:
        return head - self.confirmations + 1

    def block_hash(self, height: int) -> str | None:
        try:
            return self.rpc("getblockhash", height)
        except JSONRPCError as exc:
            if self._code(exc) == -8:  # height out of range
                return None
            raise ChainUnavailable(f"Bitcoin node error: {exc}") from None

    def block(self, height: int, watch: Watch) -> Block | None:
        block_hash = self.block_hash(height)
        if block_hash is None:
            return None
        block = self.rpc("getblock", block_hash, 2)
        transfers: list[Transfer] = []
        for tx in block["tx"]:
            sender = _first_input_address(tx)
            for out in tx["vout"]:
                script = out.get("scriptPubKey", {})
                addresses = [script["address"]] if "address" in script else script.get("addresses", [])
                if len(addresses) == 1 and addresses[0].lower() in watch.addresses:
                    sats = to_base_units(Decimal(out["value"]), 8)
                    if sats > 0:
                        transfers.append(Transfer(tx["txid"], int(out["n"]), addresses[0], sats, from_address=sender))
        return Block(height=int(block["height"]), hash=block["hash"], parent_hash=block.get("previousblockhash", ""), transfers=transfers)

    def _unspent(self, address: str) -> list[dict]:
        result = self.rpc("scantxoutset", "start", [f"addr({address})"])
        return sorted(result.get("unspents", []), key=lambda u: (-Decimal(u["amount"]), u["txid"], u["vout"]))

    def balance(self, address: str, contract: str = "") -> int:
        return sum(to_base_units(Decimal(u["amount"]), 8) for u in self._unspent(address))

    def _fee_rate(self) -> int:
        try:
            estimate = self.rpc("estimatesmartfee", 6)
            if "feerate" in estimate:  # BTC/kvB
                return max(1, int(to_base_units(Decimal(estimate["feerate"]), 8) // 1000))
        except JSONRPCError:
            pass
        return DEFAULT_FEE_RATE_SAT_VB

    @sensitive_variables()
    def sign_transfer(self, *, private_key: str, from_address: str, to: str, amount_base: int, contract: str, nonce: int | None) -> SignedTx:
        rate = self._fee_rate()
        chosen: list[dict] = []
        total = 0
        for coin in self._unspent(from_address):
            if f"{coin['txid']}:{coin['vout']}" in self.avoid_outpoints:
                continue
            chosen.append(coin)
            total += to_base_units(Decimal(coin["amount"]), 8)
            if total >= amount_base + rate * _vbytes(len(chosen), 2):
                break
        fee = rate * _vbytes(len(chosen), 2)
        if total < amount_base + fee:
            raise ChainsError(ChainsErrorCode.CHAIN_UNAVAILABLE, "The hot wallet has not enough confirmed coins.", needed=amount_base + fee, have=total)
        change = total - amount_base - fee
        outputs = {to: str(from_base_units(amount_base, 8))}
        if change >= DUST_SATS:
            outputs[from_address] = str(from_base_units(change, 8))
        inputs = [{"txid": c["txid"], "vout": c["vout"]} for c in chosen]
        unsigned = self.rpc("createrawtransaction", inputs, outputs)
        prevtxs = [{"txid": c["txid"], "vout": c["vout"], "scriptPubKey": c["scriptPubKey"], "amount": str(c["amount"])} for c in chosen]
        signed = self.rpc("signrawtransactionwithkey", unsigned, [private_key], prevtxs)
        if not signed.get("complete"):
            raise ChainsError(ChainsErrorCode.CHAIN_UNAVAILABLE, "Signing did not complete.", errors=str(signed.get("errors"))[:300])
        txid = self.rpc("decoderawtransaction", signed["hex"])["txid"]
        return SignedTx(raw=signed["hex"], txid=txid, nonce=json.dumps(sorted(f"{c['txid']}:{c['vout']}" for c in chosen)))

    def broadcast(self, raw: str) -> str:
        txid = self.rpc("decoderawtransaction", raw)["txid"]
        try:
            return self.rpc("sendrawtransaction", raw)
        except JSONRPCError as exc:
            message = str(getattr(exc, "error", {}).get("message", exc))
            if self._code(exc) == -27 or any(m in message for m in _ALREADY_KNOWN) or self.tx_state(txid).found:
                return txid
            raise ChainUnavailable(f"Bitcoin broadcast refused: {message}") from None

    def tx_state(self, txid: str) -> TxState:
        try:
            tx = self.rpc("getrawtransaction", txid, True)
        except JSONRPCError as exc:
            if self._code(exc) == -5:
                return TxState(found=False)
            raise ChainUnavailable(f"Bitcoin node error: {exc}") from None
        if not tx.get("blockhash"):
            return TxState(found=True)
        confirmations = int(tx.get("confirmations", 0))
        if confirmations <= 0:  # in a block that is no longer on the best chain
            return TxState(found=True)
        height = int(self.rpc("getblockheader", tx["blockhash"])["height"])
        return TxState(found=True, success=True, block_height=height, confirmations=confirmations, final=confirmations >= self.confirmations)
