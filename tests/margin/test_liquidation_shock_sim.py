"""``risk_shock_sim`` at a small size: the real liquidation path under seeded shocks ends
with conservation exact, no account left with negative equity, no liquidation triggered on
the safe side of the price shown to the user, and nothing left pending."""
from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db]


def test_a_small_shock_simulation_liquidates_exactly_and_conserves_every_asset():
    out = io.StringIO()
    call_command("risk_shock_sim", accounts=200, seed=1, in_place=True, stdout=out)
    line = out.getvalue().strip().splitlines()[-1]
    print(line)  # docs/margin.md quotes it (pytest -s)
    values = dict(re.findall(r"(\w+)=(\S+)", line))
    assert list(values) == ["liquidated", "negative_equity", "insurance_fund_change", "bad_debt", "conservation", "max_liq_price_gap_ticks", "pending"], line
    assert int(values["liquidated"]) > 0, line
    assert values["conservation"] == "exact", line
    assert values["negative_equity"] == "0", line
    assert values["max_liq_price_gap_ticks"] == "0", line
    assert values["pending"] == "0", line  # drained: nothing in progress, nobody due
    # (the run itself raises SimInvariantError if bad debt was written off beside a solvent fund)
