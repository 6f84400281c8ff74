"""The labelled replay on a small seed: the real engine and C book, every manipulation type,
held to the issue's goals (recall ≥ 0.95 and precision ≥ 0.80 per type). Seed 7 is in the
tuning range; the reported evaluation (docs/surveillance.md) uses seed 1, never tuned on."""
from __future__ import annotations

import pytest

from surveillance.evaluation import TYPES, evaluate, fast_commits, table

pytestmark = pytest.mark.django_db(transaction=False)


def test_small_replay_meets_the_recall_and_precision_goals_for_every_type():
    fast_commits()
    result = evaluate(seed=7, hours=2.5, markets=1, background=8, per_type=1, tick_s=10)
    print(table(result.rows))
    rows = {r["type"]: r for r in result.rows}
    assert set(rows) == set(TYPES)
    for t in TYPES:
        assert rows[t]["injected"] == 1, rows[t]
        assert rows[t]["recall"] >= 0.95, (t, table(result.rows))
        assert rows[t]["precision"] >= 0.80, (t, table(result.rows), result.false_list)
