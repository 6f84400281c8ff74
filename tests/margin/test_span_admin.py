"""The read-only admin page of the SPAN parameter files: every version, the active one, and a
chosen version's whole table."""
from __future__ import annotations

import pytest

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


@pytest.mark.django_db
def test_the_page_renders_for_staff_and_the_accounts_list_links_it(client, django_user_model):
    staff = django_user_model.objects.create_superuser(email="staff@kk99.local", password="pw-staff-123456")
    client.force_login(staff)

    page = client.get("/admin/margin/marginaccount/span-params/?version=2026-11-a")
    listing = client.get("/admin/margin/marginaccount/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "SPAN scenario parameters" in text and "<strong>active</strong>" in text
    assert text.count("<tr><td>") >= 16 + 4 + 3  # scenarios, overrides, credit pairs
    assert "-2/3" in text and "BTC / ETH" in text
    assert listing.status_code == 200 and "/admin/margin/marginaccount/span-params/" in listing.content.decode()


@pytest.mark.django_db
def test_the_page_is_not_public(client):
    assert client.get("/admin/margin/marginaccount/span-params/").status_code == 302
