"""A web worker imports its URL conf (every view) as it starts, not in its first request, and
no view module imports matplotlib (about a second) before a backtest picture is drawn."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", ["kk99.wsgi", "kk99.asgi"])
def test_the_server_entry_point_loads_the_url_conf_without_matplotlib(entry):
    code = f"import sys, {entry}; print('quant.views' in sys.modules, 'kk99.urls' in sys.modules, 'matplotlib' in sys.modules)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "kk99.settings.dev", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False"]


def test_a_backtest_picture_still_draws():
    from quant.report import figure

    png = figure(equity=[100, 101, 99, 103], title="t")
    assert png.startswith(b"\x89PNG")
