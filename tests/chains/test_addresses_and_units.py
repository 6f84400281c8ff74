"""Address validation vectors per chain and exact unit conversion."""
from __future__ import annotations

from decimal import Decimal

import pytest

from wallets.chains.addresses import address_validate, btc_address_validate
from wallets.chains.errors import ChainsError, InvalidAddress
from wallets.chains.units import from_base_units, to_base_units

# EIP-55's own examples.
EIP55_VALID = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_VALID)
def test_eip55_checksummed_addresses_are_accepted_unchanged(address):
    assert address_validate(chain="ETH", address=address) == address


def test_eip55_address_with_one_letter_case_flipped_is_refused():
    bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"  # last letter case flipped
    with pytest.raises(InvalidAddress):
        address_validate(chain="ETH", address=bad)


def test_eth_address_without_checksum_is_returned_checksummed():
    assert address_validate(chain="ETH", address=EIP55_VALID[0].lower()) == EIP55_VALID[0]


@pytest.mark.parametrize("bad", ["", "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA", "0xZZAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00"])
def test_malformed_eth_addresses_are_refused(bad):
    with pytest.raises(InvalidAddress):
        address_validate(chain="ETH", address=bad)


def test_tron_base58check_address_is_accepted():
    assert address_validate(chain="TRX", address="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t") == "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


@pytest.mark.parametrize(
    "bad",
    [
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u",  # checksum broken
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",  # valid base58check, but a Bitcoin version byte
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6",  # too short
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    ],
)
def test_invalid_tron_addresses_are_refused(bad):
    with pytest.raises(InvalidAddress):
        address_validate(chain="TRX", address=bad)


MAINNET = {"name": "mainnet", "p2pkh": 0x00, "p2sh": [0x05], "hrp": "bc", "wif": 0x80}
REGTEST = {"name": "regtest", "p2pkh": 0x6F, "p2sh": [0xC4], "hrp": "bcrt", "wif": 0xEF}


@pytest.mark.parametrize(
    "address",
    [
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",  # P2PKH
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",  # P2SH
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # BIP 173 v0 P2WPKH
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",  # upper case is allowed
        "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",  # v0 P2WSH
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",  # BIP 350 taproot (bech32m)
    ],
)
def test_bitcoin_mainnet_vectors_are_accepted(address):
    assert btc_address_validate(address, MAINNET) in (address, address.lower())


@pytest.mark.parametrize(
    "bad",
    [
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",  # checksum broken
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",  # bech32 checksum broken
        "bc1Qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # mixed case
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",  # v0 program with a bech32m checksum (BIP 350 invalid)
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",  # v1 with a bech32 checksum (BIP 350 invalid)
        "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",  # testnet hrp on mainnet
        "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn",  # testnet P2PKH on mainnet
    ],
)
def test_bitcoin_invalid_or_wrong_network_addresses_are_refused(bad):
    with pytest.raises(InvalidAddress):
        btc_address_validate(bad, MAINNET)


def test_regtest_network_takes_bcrt_and_refuses_mainnet(settings):
    assert address_validate(chain="BTC", address="bcrt1qd7spv5q28348xl4myc8zmh983w5jx32cs707jh")
    with pytest.raises(InvalidAddress):
        address_validate(chain="BTC", address="bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")


def test_litecoin_regtest_prefixes_are_configurable(settings):
    settings.KK99 = {**settings.KK99, "BTC_NETWORK": "litecoin-regtest"}
    from bip_utils import P2WPKHAddrEncoder

    address = P2WPKHAddrEncoder.EncodeKey(bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"), hrp="rltc")
    assert address_validate(chain="BTC", address=address) == address
    with pytest.raises(InvalidAddress):
        address_validate(chain="BTC", address="bcrt1qd7spv5q28348xl4myc8zmh983w5jx32cs707jh")


@pytest.mark.parametrize("address", ["11111111111111111111111111111111", "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "So11111111111111111111111111111111111111112"])
def test_solana_32_byte_base58_keys_are_accepted(address):
    assert address_validate(chain="SOL", address=address) == address


@pytest.mark.parametrize("bad", ["", "0OIl" * 10, "1111111111111111111111111111111", "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DAA", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"])
def test_solana_addresses_that_are_not_32_bytes_are_refused(bad):
    with pytest.raises(InvalidAddress):
        address_validate(chain="SOL", address=bad)


def test_unknown_chain_is_refused():
    with pytest.raises(InvalidAddress):
        address_validate(chain="DOGE", address="x")


# --- units ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount,decimals,base",
    [
        (Decimal("1"), 18, 10**18),
        (Decimal("0.000000000000000001"), 18, 1),
        (Decimal("123456789.123456789012345678"), 18, 123456789123456789012345678),
        (Decimal("0.00000001"), 8, 1),
        (Decimal("21000000"), 8, 2_100_000_000_000_000),
        (Decimal("1.5"), 6, 1_500_000),
        (Decimal("0.000000001"), 9, 1),
    ],
)
def test_unit_conversion_round_trips_exactly(amount, decimals, base):
    assert to_base_units(amount, decimals) == base
    assert from_base_units(base, decimals) == amount


def test_more_decimals_than_the_chain_carries_is_refused_not_rounded():
    with pytest.raises(ChainsError):
        to_base_units(Decimal("0.000000001"), 8)


def test_floats_are_refused_at_the_boundary():
    with pytest.raises(TypeError):
        to_base_units(0.1, 8)
    with pytest.raises(TypeError):
        from_base_units(1.0, 8)


def test_huge_wei_amounts_stay_exact():
    wei = 2**255 + 12345
    assert to_base_units(from_base_units(wei, 18), 18) == wei
