"""The chains KK99 speaks to, and their network parameters from settings."""
from __future__ import annotations

from django.db import models

from kk99.conf import kk99_setting


class Chain(models.TextChoices):
    ETH = "ETH", "Ethereum"
    BTC = "BTC", "Bitcoin"
    TRX = "TRX", "TRON"
    SOL = "SOL", "Solana"


def btc_network() -> dict:
    """The configured Bitcoin-family network: ``p2pkh`` version byte, ``p2sh`` version bytes,
    bech32 ``hrp`` and ``wif`` prefix (``KK99["BTC_NETWORK"]`` names one of ``BTC_NETWORKS``)."""
    name = kk99_setting("BTC_NETWORK")
    try:
        return {"name": name, **kk99_setting("BTC_NETWORKS")[name]}
    except KeyError:
        raise KeyError(f"KK99['BTC_NETWORK'] = {name!r} is not one of KK99['BTC_NETWORKS']") from None


def confirmations_rule(chain: str) -> int | str:
    return kk99_setting("CHAIN_CONFIRMATIONS")[chain]


def chain_enabled(chain: str) -> bool:
    return chain in kk99_setting("CHAINS_ENABLED") and chain in Chain.values
