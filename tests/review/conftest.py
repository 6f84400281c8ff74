"""Fixtures for the review tests: the chains fixtures (assets, staff, funding) are reused."""
from tests.chains.conftest import (  # noqa: F401 — pytest fixtures, used by name
    _chains_settings,
    adapter,
    alice,
    assets,
    chain_assets,
    fake,
    fund,
    funded,
    make_user,
    staff_members,
)
