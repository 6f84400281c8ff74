"""The trading system check reports a missing native extension with the fix."""
from __future__ import annotations

import importlib

from trading.checks import native_orderbook_built


def test_check_passes_when_the_extension_is_built():
    assert native_orderbook_built() == []


def test_check_fails_with_the_fix_when_the_extension_is_missing(monkeypatch):
    real = importlib.import_module

    def fake(name, *args):
        if name == "trading.native._orderbook":
            raise ImportError("No module named 'trading.native._orderbook'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    errors = native_orderbook_built()
    assert [e.id for e in errors] == ["trading.E001"]
    assert "pip install -e ." in errors[0].hint
