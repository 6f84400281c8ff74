"""Chain adapters: one per chain behind :class:`~wallets.chains.adapters.base.ChainAdapter`.

:func:`adapter_for` builds the configured adapter; tests replace it with
:func:`adapter_override` (a context manager) to point a chain at a local node or a fake."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kk99.conf import kk99_setting
from wallets.chains.adapters.base import ChainAdapter
from wallets.chains.chain import Chain, confirmations_rule

_overrides: dict[str, Callable[[], ChainAdapter]] = {}


def adapter_for(chain: str) -> ChainAdapter:
    if chain in _overrides:
        return _overrides[chain]()
    url = kk99_setting("CHAIN_RPC_URLS")[chain]
    if chain == Chain.ETH:
        from wallets.chains.adapters.ethereum import EthereumAdapter

        return EthereumAdapter(url, int(confirmations_rule(chain)))
    if chain == Chain.BTC:
        from wallets.chains.adapters.bitcoin import BitcoinAdapter

        return BitcoinAdapter(url, int(confirmations_rule(chain)))
    if chain == Chain.TRX:
        from wallets.chains.adapters.tron import TronAdapter

        return TronAdapter(url)
    if chain == Chain.SOL:
        from wallets.chains.adapters.solana import SolanaAdapter

        return SolanaAdapter(url)
    raise ValueError(f"Unknown chain {chain!r}")


@contextmanager
def adapter_override(chain: str, factory: Callable[[], ChainAdapter]) -> Iterator[None]:
    previous = _overrides.get(chain)
    _overrides[chain] = factory
    try:
        yield
    finally:
        if previous is None:
            _overrides.pop(chain, None)
        else:
            _overrides[chain] = previous
