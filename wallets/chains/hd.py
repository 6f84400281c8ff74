"""Deposit addresses from public material only — the web tier never holds a deposit private key.

* ETH and TRX: BIP44 account extended public key (``m/44'/60'/0'`` resp. ``m/44'/195'/0'``);
  the address of index *i* is the external child ``0/i`` — the same secp256k1 derivation, two
  encodings (Keccak-20 as EIP-55 hex; 0x41-prefixed base58check).
* BTC: BIP84 account extended public key (``m/84'/0'/0'``, or coin 1 on test networks); index
  *i* → ``0/i`` as P2WPKH bech32 with the configured network's human-readable part.
* SOL: ed25519 has no public child derivation. KK99 uses Solana's own *seeded addresses*:
  ``address = sha256(base ‖ seed ‖ owner)`` with ``base`` the sweep authority's public key (in
  Vault), ``seed = "kk99-dep-<i>"`` and owner the System Program. Anyone can compute the address
  from the public key; only the base key can move funds out of it (``TransferWithSeed``), so one
  key in Vault controls every deposit address and no per-user secret exists anywhere.

The derivation index of a user's address is the user's primary key: stable, unique per chain and
recomputable from the xpub alone (an auditor can re-derive every deposit address).
"""
from __future__ import annotations

import hashlib
from typing import Any

import base58
from bip_utils import (
    Bip32KeyNetVersions,
    Bip32Secp256k1,
    Bip39SeedGenerator,
    Bip44,
    Bip44Changes,
    Bip44Coins,
    Bip84,
    Bip84Coins,
    EthAddrEncoder,
    P2WPKHAddrEncoder,
    TrxAddrEncoder,
    WifEncoder,
)
from django.views.decorators.debug import sensitive_variables

from wallets.chains.chain import Chain, btc_network

SOLANA_SYSTEM_PROGRAM = bytes(32)  # 11111111111111111111111111111111
SOLANA_SEED_PREFIX = "kk99-dep-"
MAX_INDEX = 2**31 - 1  # non-hardened child indexes
# Extended-key version bytes accepted: xpub/tpub (BIP32/44) and zpub/vpub (BIP84).
_KEY_VERSIONS = [
    Bip32KeyNetVersions(bytes.fromhex(pub), bytes.fromhex(prv))
    for pub, prv in (("0488b21e", "0488ade4"), ("043587cf", "04358394"), ("04b24746", "04b2430c"), ("045f1cf6", "045f18bc"))
]


def _xpub_node(xpub: str) -> Bip32Secp256k1:
    for versions in _KEY_VERSIONS:
        try:
            node = Bip32Secp256k1.FromExtendedKey(xpub, versions)
        except Exception:  # wrong version bytes or a malformed key: try the next network
            continue
        if not node.IsPublicOnly():
            raise ValueError("Deposit derivation needs an extended PUBLIC key, not a private one.")
        return node
    raise ValueError("Not an extended public key.")


def solana_seeded_address(base: str, index: int) -> tuple[str, str]:
    """``(address, seed)`` of the seeded account for ``index`` under ``base`` (base58)."""
    seed = f"{SOLANA_SEED_PREFIX}{index}"
    digest = hashlib.sha256(base58.b58decode(base) + seed.encode() + SOLANA_SYSTEM_PROGRAM).digest()
    return base58.b58encode(digest).decode(), seed


def deposit_address_derive(*, chain: str, material: dict[str, Any], index: int) -> str:
    """The deposit address number ``index`` of ``chain`` from public ``material`` (the Vault
    secret ``chains/<CHAIN>/deposit``: ``xpub``, or ``base`` for Solana)."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError("Derivation index out of range.")
    if chain == Chain.SOL:
        return solana_seeded_address(material["base"], index)[0]
    child = _xpub_node(material["xpub"]).ChildKey(0).ChildKey(index)
    public_key = child.PublicKey().KeyObject()
    if chain == Chain.ETH:
        return EthAddrEncoder.EncodeKey(public_key)
    if chain == Chain.TRX:
        return TrxAddrEncoder.EncodeKey(public_key)
    if chain == Chain.BTC:
        return P2WPKHAddrEncoder.EncodeKey(public_key, hrp=btc_network()["hrp"])
    raise ValueError(f"Unknown chain {chain!r}.")


# --- development material (the published mnemonic; see wallets.chains.vault) -------------------


def _dev_seed() -> bytes:
    from wallets.chains.vault import DEVELOPMENT_MNEMONIC

    return Bip39SeedGenerator(DEVELOPMENT_MNEMONIC).Generate()


@sensitive_variables()
def development_secret(path: str) -> dict[str, Any] | None:
    """The development stand-in for the Vault secret at ``path`` (chains only), else None."""
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != "chains" or parts[1] not in Chain.values:
        return None
    chain, kind = parts[1], parts[2]
    seed = _dev_seed()
    if chain == Chain.SOL:
        from nacl.signing import SigningKey

        from bip_utils import Bip44 as _B

        node = _B.FromSeed(seed, Bip44Coins.SOLANA).Purpose().Coin().Account(0 if kind == "deposit" else 1)
        private = node.PrivateKey().Raw().ToBytes()
        public = base58.b58encode(bytes(SigningKey(private).verify_key)).decode()
        return {"base": public} if kind == "deposit" else {"private_key": private.hex(), "address": public}
    if chain == Chain.BTC:
        coin = Bip84Coins.BITCOIN if btc_network()["name"] in ("mainnet",) else Bip84Coins.BITCOIN_TESTNET
        account = Bip84.FromSeed(seed, coin).Purpose().Coin().Account(0)
    else:
        coin = Bip44Coins.ETHEREUM if chain == Chain.ETH else Bip44Coins.TRON
        account = Bip44.FromSeed(seed, coin).Purpose().Coin().Account(0)
    if kind == "deposit":
        return {"xpub": account.PublicKey().ToExtended()}
    # The hot wallet: change chain 1, index 0 of the same account (never a deposit address).
    hot = account.Change(Bip44Changes.CHAIN_INT).AddressIndex(0)
    private_hex = hot.PrivateKey().Raw().ToHex()
    if chain == Chain.BTC:
        private = WifEncoder.Encode(hot.PrivateKey().Raw().ToBytes(), net_ver=bytes([btc_network()["wif"]]))
        address = P2WPKHAddrEncoder.EncodeKey(hot.PublicKey().Bip32Key().KeyObject(), hrp=btc_network()["hrp"])
        return {"private_key": private, "address": address}
    address = (EthAddrEncoder if chain == Chain.ETH else TrxAddrEncoder).EncodeKey(hot.PublicKey().Bip32Key().KeyObject())
    return {"private_key": private_hex, "address": address}
