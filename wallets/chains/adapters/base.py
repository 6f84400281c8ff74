"""The one interface every chain adapter implements.

Adapters speak integers (base units) and raw node data; they convert nothing to Decimal — the
services do that once with :mod:`wallets.chains.units`. They hold no state a crash could lose:
signing returns the bytes and the nonce, and the caller records them before broadcasting.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Transfer:
    """A value transfer to one of our addresses found in a block."""

    txid: str
    index: int
    to_address: str
    amount_base: int
    contract: str = ""  # "" = the native coin
    from_address: str = ""  # the sending address when the chain names one ("" = unknown)


@dataclass(frozen=True, slots=True)
class Block:
    height: int
    hash: str
    parent_hash: str
    transfers: list[Transfer] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SignedTx:
    raw: str  # what broadcast() takes (hex, base64 or JSON, per chain)
    txid: str
    nonce: str  # what makes a second, different transaction impossible or detectable


@dataclass(frozen=True, slots=True)
class TxState:
    found: bool
    success: bool | None = None
    block_height: int | None = None
    confirmations: int = 0
    final: bool = False


@dataclass(frozen=True, slots=True)
class Watch:
    """What the scanner looks for: match keys of our addresses, and token contracts."""

    addresses: frozenset[str]
    contracts: frozenset[str]


class ChainAdapter(ABC):
    chain: str

    @abstractmethod
    def head_height(self) -> int:
        """The node's current head."""

    @abstractmethod
    def final_height(self, head: int) -> int:
        """The highest block that is final by this chain's rule (confirmations, solidified, finalized)."""

    @abstractmethod
    def block_hash(self, height: int) -> str | None:
        """The hash of the block at ``height`` on the node's best chain (None: none there)."""

    @abstractmethod
    def block(self, height: int, watch: Watch) -> Block | None:
        """The block at ``height`` with the transfers to watched addresses (None: skipped slot)."""

    @abstractmethod
    def balance(self, address: str, contract: str = "") -> int:
        """The on-chain balance of ``address`` in base units."""

    @abstractmethod
    def sign_transfer(self, *, private_key: str, from_address: str, to: str, amount_base: int, contract: str, nonce: int | None) -> SignedTx:
        """Build and sign a transfer. Nothing is sent."""

    def next_nonce(self, address: str) -> int | None:
        """The account nonce the node expects next (chains with nonces), else None."""
        return None

    @abstractmethod
    def broadcast(self, raw: str) -> str:
        """Send signed bytes; idempotent (a node that already has them is success). Returns the txid.
        Raises :class:`~wallets.chains.errors.TransactionExpired` when they can never be included."""

    @abstractmethod
    def tx_state(self, txid: str) -> TxState:
        """Where the transaction is: unknown, pending, in a block (with confirmations), final."""

    def confirmations_for(self, height: int, head: int) -> int:
        return max(0, head - height + 1)
