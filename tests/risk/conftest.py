"""The API fixtures (a market, funded traders with API keys) for the risk hook's tests."""
from tests.api.conftest import _no_engine_waits, alice, alice_api, bob, bob_api, market  # noqa: F401 — re-exported fixtures
