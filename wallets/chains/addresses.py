"""Address validation per chain. Each validator returns the canonical form of a valid address
(the form stored and compared) or raises :class:`~wallets.chains.errors.InvalidAddress`.

* ETH — ``0x`` + 40 hex digits. Mixed case must be a correct EIP-55 checksum; an all-lower or
  all-upper address (no checksum) is accepted and returned checksummed.
* TRX — base58check, 21 bytes, version byte 0x41 (addresses start with ``T``).
* BTC — per the configured network (``KK99["BTC_NETWORK"]``): base58check P2PKH / P2SH with the
  network's version bytes, or segwit: witness v0 in bech32 (20- or 32-byte programs), v1..16 in
  bech32m (BIP 350), with the network's human-readable part. Case-mixed bech32 is refused.
* SOL — base58 that decodes to exactly 32 bytes (ed25519 public keys and program-derived
  addresses alike).

Checksums and bech32 come from libraries (eth-utils, base58, bip-utils), not hand-written code.

:func:`address_is_burn` says whether a valid address can never be spent from: the all-zero
account/hash of every chain (nobody knows a key or script for it) and the well-known burn
addresses named in ``BURN_ADDRESSES`` (their private keys are unknowable: vanity strings
with a valid checksum, or conventions such as ``0x…dEaD``).
"""
from __future__ import annotations

import re

import base58
from bip_utils import SegwitBech32Decoder
from eth_utils import is_checksum_address, to_checksum_address

from wallets.chains.chain import Chain, btc_network
from wallets.chains.errors import InvalidAddress

_ETH_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_B58_ALPHABET = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


def eth_address_validate(address: str) -> str:
    if not _ETH_RE.match(address):
        raise InvalidAddress("An Ethereum address is 0x followed by 40 hexadecimal digits.", chain="ETH")
    body = address[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(address):
        raise InvalidAddress("The EIP-55 checksum (letter case) of this Ethereum address is wrong.", chain="ETH")
    return to_checksum_address(address)


def _b58check(address: str) -> bytes | None:
    if not address or not set(address) <= _B58_ALPHABET:
        return None
    try:
        return base58.b58decode_check(address)
    except ValueError:
        return None


def tron_address_validate(address: str) -> str:
    raw = _b58check(address)
    if raw is None or len(raw) != 21 or raw[0] != 0x41:
        raise InvalidAddress("A TRON address is base58check of 21 bytes starting with 0x41 (T…).", chain="TRX")
    return address


def btc_address_validate(address: str, network: dict | None = None) -> str:
    net = network or btc_network()
    hrp = net["hrp"]
    if address.lower().startswith(hrp + "1"):
        if address != address.lower() and address != address.upper():
            raise InvalidAddress("A bech32 address must not mix upper and lower case.", chain="BTC")
        canonical = address.lower()
        try:
            version, program = SegwitBech32Decoder.Decode(hrp, canonical)
        except Exception:  # bip-utils raises several exception types for bad checksums/lengths
            raise InvalidAddress(f"Not a valid segwit address for the {net['name']} network.", chain="BTC") from None
        if version == 0 and len(program) not in (20, 32):
            raise InvalidAddress("A witness v0 program is 20 or 32 bytes.", chain="BTC")
        if not 0 <= version <= 16 or not 2 <= len(program) <= 40:
            raise InvalidAddress("Invalid witness version or program length.", chain="BTC")
        return canonical
    raw = _b58check(address)
    if raw is None or len(raw) != 21 or (raw[0] != net["p2pkh"] and raw[0] not in net["p2sh"]):
        raise InvalidAddress(f"Not a valid address for the {net['name']} network.", chain="BTC")
    return address


def sol_address_validate(address: str) -> str:
    if not 32 <= len(address) <= 44 or not set(address) <= _B58_ALPHABET:
        raise InvalidAddress("A Solana address is 32 bytes in base58.", chain="SOL")
    if len(base58.b58decode(address)) != 32:
        raise InvalidAddress("A Solana address is 32 bytes in base58.", chain="SOL")
    return address


_VALIDATORS = {
    Chain.ETH: eth_address_validate,
    Chain.TRX: tron_address_validate,
    Chain.BTC: btc_address_validate,
    Chain.SOL: sol_address_validate,
}


def address_validate(*, chain: str, address: str) -> str:
    """The canonical form of ``address`` on ``chain``, or :class:`InvalidAddress`."""
    if not isinstance(address, str):
        raise InvalidAddress("An address is text.")
    try:
        validator = _VALIDATORS[Chain(chain)]
    except ValueError:
        raise InvalidAddress(f"Unknown chain {chain!r}.") from None
    return validator(address.strip())


def address_match_key(chain: str, address: str) -> str:
    """The key used to compare addresses seen on chain with ours (ETH is case-insensitive)."""
    return address.lower() if chain in (Chain.ETH, Chain.BTC) else address


# Well-known unspendable addresses, per chain, in canonical form (as the validators return it).
BURN_ADDRESSES: dict[str, frozenset[str]] = {
    # The "dead" address that ERC-20 burns send to by convention (besides the zero address).
    Chain.ETH: frozenset({"0x000000000000000000000000000000000000dEaD"}),
    # The Bitcoin eater address: a hand-picked base58 string with a valid checksum, so nobody
    # holds a key for its hash.
    Chain.BTC: frozenset({"1BitcoinEaterAddressDontSendf59kuE"}),
    Chain.TRX: frozenset(),
    # The Solana incinerator (lamports sent there are destroyed by the runtime).
    Chain.SOL: frozenset({"1nc1nerator11111111111111111111111111111111"}),
}


def _payload(chain: str, address: str) -> bytes | None:
    """The account bytes / hash / witness program a canonical address stands for."""
    if chain == Chain.ETH:
        return bytes.fromhex(address[2:])
    if chain == Chain.SOL:
        return base58.b58decode(address)
    if chain == Chain.TRX:
        raw = _b58check(address)
        return raw[1:] if raw else None
    if chain == Chain.BTC:
        hrp = address.rsplit("1", 1)[0] if "1" in address and address == address.lower() else None
        if hrp and hrp == btc_network()["hrp"]:
            try:
                return bytes(SegwitBech32Decoder.Decode(hrp, address)[1])
            except Exception:  # not bech32 after all: try base58 below
                pass
        raw = _b58check(address)
        return raw[1:] if raw else None
    return None


def address_is_burn(*, chain: str, address: str) -> bool:
    """True for an address nothing sent to can ever leave: the chain's all-zero address or
    hash (ETH ``0x000…0``, TRON ``T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb``, BTC/LTC P2PKH/P2SH/segwit
    of an all-zero hash, the Solana system program ``111…1``) or a known burn address.
    ``address`` is the canonical form from :func:`address_validate`."""
    if address in BURN_ADDRESSES.get(Chain(chain), frozenset()):
        return True
    payload = _payload(chain, address)
    return bool(payload) and not any(payload)
