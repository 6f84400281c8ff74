"""Grafana dashboards: generated from deploy/grafana/generate.py, and every panel's query names
metrics that exist in kk99/metrics.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.ops.test_prometheus import known_metric, metric_names_in

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
EXPECTED = {"kk99-overview", "kk99-engine", "kk99-api", "kk99-chains", "kk99-ledger"}


def _dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(GRAFANA.glob("*.json"))}


def test_the_five_dashboards_exist():
    assert set(_dashboards()) == EXPECTED


def test_every_panel_query_names_an_existing_metric():
    checked = 0
    for name, board in _dashboards().items():
        assert board["panels"], name
        for panel in board["panels"]:
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                used = metric_names_in(target["expr"])
                assert used, (name, panel["title"], target["expr"])
                unknown = [m for m in used if not known_metric(m)]
                assert not unknown, f"{name} / {panel['title']}: unknown metrics {unknown}"
                checked += 1
    assert checked >= 30


def test_committed_dashboards_equal_the_generator_output():
    proc = subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_panel_check_rejects_a_query_on_a_missing_metric():
    assert not known_metric(next(iter(metric_names_in("sum(rate(kk99_engine_orderz_total[1m]))"))))
