"""Fixtures for the review tests: the chains fixtures (assets, staff, funding) are reused."""
from tests.chains.conftest import alice, assets, chain_assets, fund, make_user, staff_members  # noqa: F401
