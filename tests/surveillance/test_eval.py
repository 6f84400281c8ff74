"""The labelled replay on a small seed: the real engine and C book, every manipulation type."""
from __future__ import annotations

import pytest

from surveillance.evaluation import TYPES, evaluate, table

pytestmark = pytest.mark.django_db(transaction=False)


def test_small_replay_detects_every_injected_type_with_few_false_alerts():
    result = evaluate(seed=7, hours=2.5, markets=1, background=8, per_type=1, tick_s=10)
    print(table(result.rows))
    rows = {r["type"]: r for r in result.rows}
    assert set(rows) == set(TYPES)
    for t in TYPES:
        assert rows[t]["injected"] == 1, rows[t]
        assert rows[t]["detected"] == 1, (t, table(result.rows))
    assert result.false_alerts <= 2, table(result.rows)
