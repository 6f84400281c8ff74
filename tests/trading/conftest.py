"""Trading tests: the shared exchange fixtures (tests/fixtures.py) with fee tiers re-read on
every engine batch."""
from __future__ import annotations

import pytest

# Older tests and other branches import these helpers from here; new code imports tests.fixtures.
from tests.fixtures import (  # noqa: F401 — re-exported helpers, not fixtures (those come from tests/fixtures.py via pytest_plugins)
    assert_holds_match_open_orders,
    assert_ledger_clean,
    bal,
    fresh,
    fund,
    market_create,
    place,
)


@pytest.fixture(autouse=True)
def _fee_tiers_per_batch(settings):
    settings.KK99 = {**settings.KK99, "FEE_TIER_CACHE_SECONDS": 0}
