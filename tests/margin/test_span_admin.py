"""The read-only admin page of the SPAN parameter files: every version, the active one, and a
chosen version's whole table."""
from __future__ import annotations

from margin import span
from margin.span_admin import span_params_context


def test_context_lists_every_version_marks_the_active_one_and_shows_its_table():
    ctx = span_params_context(None)
    assert [v["version"] for v in ctx["versions"]] == span.available_versions()
    assert [v["version"] for v in ctx["versions"] if v["active"]] == ["2026-11-a"]
    assert ctx["chosen"] == ctx["active"] == "2026-11-a"
    assert len(ctx["params"].scenarios) == 16
    assert [symbol for symbol, _ in ctx["assets"]] == ["BTC", "ETH", "KK99", "USDC"]


def test_an_unknown_version_in_the_query_falls_back_to_the_active_one():
    assert span_params_context("../../etc/passwd")["chosen"] == "2026-11-a"


def test_an_invalid_file_is_listed_with_its_error_not_a_500(tmp_path, monkeypatch):
    good = (span.SCENARIOS_DIR / "2026-11-a.json").read_text()
    (tmp_path / "2026-11-a.json").write_text(good)
    (tmp_path / "2027-01-x.json").write_text(good)  # its version field says 2026-11-a
    monkeypatch.setattr(span, "SCENARIOS_DIR", tmp_path)
    span._load.cache_clear()
    try:
        ctx = span_params_context("2027-01-x")
    finally:
        span._load.cache_clear()
    assert ctx["params"] is None and "does not match the file name" in ctx["error"]
    assert [v["error"] is not None for v in ctx["versions"]] == [False, True]


def test_an_invalid_active_file_is_shown_with_its_error(settings, tmp_path, monkeypatch):
    (tmp_path / "broken.json").write_text("{}")
    monkeypatch.setattr(span, "SCENARIOS_DIR", tmp_path)
    settings.KK99 = {**settings.KK99, "MARGIN_SPAN": {**settings.KK99["MARGIN_SPAN"], "PARAMS_VERSION": "broken"}}
    span._load.cache_clear()
    try:
        ctx = span_params_context(None)
    finally:
        span._load.cache_clear()
    assert ctx["chosen"] == "broken" and ctx["params"] is None and "missing key(s)" in ctx["error"]
