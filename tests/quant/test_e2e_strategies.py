"""Browser end-to-end on the Strategies page: a live daphne server, a real `celery worker`
process and Chromium with the site's CSP. Pick a strategy (the static JS fills in its
defaults), upload a CSV, watch the run finish without reloading (HTMX polling), open it,
see the server-drawn plot and the metrics, compare two runs. No CSP violation allowed."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from quant.bars import bars_to_csv, synthetic_bars
from tests.e2e.conftest import ARTIFACTS, ROOT, browser, live_exchange  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
PASSWORD = "e2e-Quant-pass-5521"
TIMEOUT = 60_000  # a loaded 2-core machine runs the worker too
LOADED = "() => { const img = document.querySelector('.quant-plot'); return img && img.complete && img.naturalWidth > 0; }"


@pytest.fixture(scope="module")
def worker(live_exchange):  # noqa: F811 — a pytest fixture parameter shadows the imported fixture by design
    env = {**live_exchange.env, "CELERY_TASK_ALWAYS_EAGER": "0"}
    if not env.get("REDIS_URL"):
        pytest.skip("the page's jobs need a broker (REDIS_URL) for a separate worker")
    log = open(ARTIFACTS / "e2e-quant-worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "kk99", "worker", "--pool", "solo", "-l", "INFO",
                             "--without-heartbeat", "--without-gossip", "--without-mingle"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_a_user_backtests_an_uploaded_csv_and_compares_runs(live_exchange, browser, worker, tmp_path):  # noqa: F811 — a pytest fixture parameter shadows the imported fixture by design
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    base = live_exchange.base_url
    live_exchange.fund("quant.e2e@example.com", {"USDT": "1"}, password=PASSWORD)
    csv = tmp_path / "walk.csv"
    csv.write_text(bars_to_csv(synthetic_bars(1500, seed=21)))

    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    violations = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(base + "/login/?next=/strategies/")
    page.fill("#id_email", "quant.e2e@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r".*/strategies/$"), timeout=TIMEOUT)
    page.evaluate("window.__kk99NoReload = 7")

    for strategy, params in (("rsi_reversion", None), ("sma_cross", "fast=10, slow=40")):
        page.select_option("#bt-strategy", strategy)
        if params is None:  # the static script filled in the defaults
            expect(page.locator("#bt-params")).to_have_value("period=14, lower=30.0, upper=70.0, allow_short=False")
        else:
            page.fill("#bt-params", params)
        page.set_input_files("#bt-csv", str(csv))
        page.click("#backtest-form button[type=submit]")
        expect(page.locator("#runs tbody tr").first).to_contain_text(strategy)

    # Both runs finish on the worker; the list updates itself (no reload: the marker survives).
    expect(page.locator("#runs input[type=checkbox]")).to_have_count(2)
    assert page.evaluate("window.__kk99NoReload") == 7
    page.screenshot(path=str(ARTIFACTS / "e2e-quant-runs.png"))

    page.locator("#runs tbody tr").first.locator("a").click()
    expect(page.locator(".quant-plot")).to_be_visible()
    expect(page.locator("table.dense")).to_contain_text("Sharpe")
    page.wait_for_function(LOADED, timeout=TIMEOUT)  # the server-drawn SVG loaded
    page.screenshot(path=str(ARTIFACTS / "e2e-quant-run.png"), full_page=True)

    page.goto(base + "/strategies/")
    page.locator("#runs input[type=checkbox]").nth(0).check()
    page.locator("#runs input[type=checkbox]").nth(1).check()
    page.click("#runs button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Compare runs")
    expect(page.locator("thead th")).to_have_count(3)
    page.wait_for_function(LOADED, timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "e2e-quant-compare.png"), full_page=True)
    assert violations == []
    ctx.close()
