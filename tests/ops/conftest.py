"""Ops fixtures: the trading fixtures (a market, funded traders) re-exported for tests/ops."""
from __future__ import annotations

from tests.trading.conftest import alice, bob, btc, make_user, market, trader, usdt  # noqa: F401 — fixtures
