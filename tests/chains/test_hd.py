"""Deposit addresses derive from public material only; one per user per chain."""
from __future__ import annotations

import hashlib

import base58
import pytest
from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins

from wallets.chains.hd import deposit_address_derive, development_secret, solana_seeded_address
from wallets.chains.models import DepositAddress
from wallets.chains.services import deposit_address_get_or_create
from wallets.chains.vault import DEVELOPMENT_MNEMONIC


def test_eth_address_from_the_published_mnemonic_matches_the_known_vector():
    xpub = development_secret("chains/ETH/deposit")["xpub"]
    assert xpub.startswith("xpub")
    assert deposit_address_derive(chain="ETH", material={"xpub": xpub}, index=0) == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"


def test_xpub_derivation_equals_private_derivation_for_every_chain_encoding():
    seed = Bip39SeedGenerator(DEVELOPMENT_MNEMONIC).Generate()
    for chain, coin in (("ETH", Bip44Coins.ETHEREUM), ("TRX", Bip44Coins.TRON)):
        xpub = development_secret(f"chains/{chain}/deposit")["xpub"]
        private_path = Bip44.FromSeed(seed, coin).Purpose().Coin().Account(0).Change(Bip44Changes.CHAIN_EXT).AddressIndex(7).PublicKey().ToAddress()
        assert deposit_address_derive(chain=chain, material={"xpub": xpub}, index=7) == private_path


def test_eth_and_tron_encode_the_same_secp256k1_child_key():
    xpub = development_secret("chains/ETH/deposit")["xpub"]
    eth = deposit_address_derive(chain="ETH", material={"xpub": xpub}, index=3)
    trx = deposit_address_derive(chain="TRX", material={"xpub": xpub}, index=3)
    assert base58.b58decode_check(trx)[1:].hex() == eth[2:].lower()


def test_an_extended_private_key_is_refused_for_deposit_derivation():
    seed = Bip39SeedGenerator(DEVELOPMENT_MNEMONIC).Generate()
    xprv = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).PrivateKey().ToExtended()
    with pytest.raises(ValueError):
        deposit_address_derive(chain="ETH", material={"xpub": xprv}, index=0)


def test_btc_deposit_address_is_bech32_for_the_configured_network():
    xpub = development_secret("chains/BTC/deposit")["xpub"]
    assert deposit_address_derive(chain="BTC", material={"xpub": xpub}, index=1).startswith("bcrt1q")


def test_solana_seeded_address_is_sha256_of_base_seed_and_system_program():
    base = development_secret("chains/SOL/deposit")["base"]
    address, seed = solana_seeded_address(base, 42)
    expected = hashlib.sha256(base58.b58decode(base) + b"kk99-dep-42" + bytes(32)).digest()
    assert seed == "kk99-dep-42" and base58.b58decode(address) == expected


@pytest.mark.parametrize("chain", ["ETH", "BTC", "TRX", "SOL"])
def test_each_user_gets_one_stable_address_per_chain(chain, make_user):
    alice, bob = make_user(), make_user()
    first = deposit_address_get_or_create(user=alice, chain=chain)
    again = deposit_address_get_or_create(user=alice, chain=chain)
    other = deposit_address_get_or_create(user=bob, chain=chain)
    assert first.pk == again.pk and first.address != other.address
    assert first.derivation_index == alice.pk
    assert DepositAddress.objects.filter(user=alice, chain=chain).count() == 1
