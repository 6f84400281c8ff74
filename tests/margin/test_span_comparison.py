"""docs/margin.md's SPAN-vs-flat table is what bench/margin_compare.py computes today, and the
claims the docs make about it hold (who gets more leverage, who less)."""
from __future__ import annotations

from pathlib import Path

from bench import margin_compare

DOC = Path(__file__).resolve().parents[2] / "docs" / "margin.md"


def test_the_comparison_table_in_the_docs_is_the_computed_one():
    doc = DOC.read_text()
    start, end = "<!-- span-compare:start -->", "<!-- span-compare:end -->"
    block = doc[doc.index(start) + len(start): doc.index(end)].strip()
    assert block == margin_compare.table().strip(), "run: .venv/bin/python -m bench.margin_compare --write docs/margin.md"


def test_hedges_and_calm_assets_get_more_leverage_concentrated_volatile_books_less():
    by_name = {name: (flat, spn) for name, _gross, flat, spn, _why in margin_compare.rows()}
    flat, spn = by_name["Long BTC, short ETH (hedged)"]
    assert spn <= flat * 55 / 100  # about twice the leverage
    flat, spn = by_name["Long BTC"]
    assert spn < flat
    for name in ("Long SOL", "Long KK99 (house token)", "Long BTC + ETH + SOL, 20,000 each"):
        flat, spn = by_name[name]
        assert spn > flat, name
    flat, spn = by_name["Long USDC (stablecoin)"]
    assert spn == flat * 3 / 10  # the 3 % minimum binds, not the 2 % range
