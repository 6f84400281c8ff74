"""Deposits, withdrawals and user changes need the chains fixtures (their ``alice`` and
``make_user`` take precedence over the trading ones of tests/events/conftest.py here)."""
from tests.chains.conftest import (  # noqa: F401 — pytest fixtures, used by name
    _chains_settings,
    adapter,
    alice,
    assets,
    chain_assets,
    fake,
    fund,
    make_user,
)
