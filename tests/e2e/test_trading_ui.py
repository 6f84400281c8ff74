"""Browser end-to-end: two traders in two Chromium contexts on a live server.

Sign up → funded → limit order; the other browser sees the book change, then the trade and
the chart after a crossing order — without reloading; cancel from the open-orders table; a
bad order shows its error inline. Screenshots go to test-artifacts/."""
from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.slow
PASSWORD = "e2e-Trader-pass-9931"
TIMEOUT = 15_000


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"e2e-{name}.png"), full_page=False)


def wait_live(page) -> None:
    page.wait_for_selector("#live-indicator[data-state=live]", timeout=TIMEOUT)


def test_two_traders_see_each_other_live(live_exchange, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    base = live_exchange.base_url

    # Alice signs up in the browser, then support funds and verifies her.
    ctx_a = browser.new_context(viewport={"width": 1440, "height": 900})
    a = ctx_a.new_page()
    a.goto(base + "/register/")
    a.fill("#id_email", "alice.e2e@example.com")
    a.fill("#id_password1", PASSWORD)
    a.fill("#id_password2", PASSWORD)
    a.click("form button[type=submit]")
    a.wait_for_selector("#register-sent", timeout=TIMEOUT)  # the same answer for new and taken emails
    a.goto(base + "/login/")
    a.fill("#id_email", "alice.e2e@example.com")
    a.fill("#id_password", PASSWORD)
    a.click("form button[type=submit]")
    a.wait_for_url(re.compile(r".*/dashboard/.*"), timeout=TIMEOUT)
    live_exchange.fund("alice.e2e@example.com", {"USDT": "100000", "BTC": "2"})

    # Bob (already a customer) logs in and watches the BTCUSDT page.
    live_exchange.fund("bob.e2e@example.com", {"USDT": "100000", "BTC": "2"}, password=PASSWORD)
    ctx_b = browser.new_context(viewport={"width": 1440, "height": 900})
    b = ctx_b.new_page()
    b.goto(base + "/login/?next=/trade/BTCUSDT/")
    b.fill("#id_email", "bob.e2e@example.com")
    b.fill("#id_password", PASSWORD)
    b.click("form button[type=submit]")
    b.wait_for_url(re.compile(r".*/trade/BTCUSDT/"), timeout=TIMEOUT)
    wait_live(b)
    b.evaluate("window.__kk99NoReload = 42")
    b.wait_for_selector("#chart[data-loaded='1']", timeout=TIMEOUT)

    # Alice places a limit sell.
    a.goto(base + "/trade/BTCUSDT/")
    wait_live(a)
    sell = a.locator("#order-form-SELL")
    sell.locator("input[name=price]").fill("60000")
    sell.locator("input[name=quantity]").fill("0.5")
    sell.locator("button[type=submit]").click()
    expect(a.locator("#order-form-SELL .form-ok")).to_contain_text("placed")
    expect(a.locator("#open-orders tbody tr[data-order-id]")).to_have_count(1)
    shot(a, "1-alice-order-placed")

    # Bob's book shows it without a reload.
    expect(b.locator("#ob-book .ob-row.ask").first).to_contain_text("60,000.00")
    shot(b, "2-bob-sees-book")

    # Bob crosses it: both pages show the trade; Bob's chart's live candle moves.
    buy = b.locator("#order-form-BUY")
    buy.locator("input[name=price]").fill("60000")
    buy.locator("input[name=quantity]").fill("0.2")
    buy.locator("button[type=submit]").click()
    expect(b.locator("#recent-trades .tr-row").first).to_contain_text("60,000.00")
    expect(b.locator("#recent-trades .tr-row").first).to_contain_text("0.2000")
    b.wait_for_function("Number(document.getElementById('chart').dataset.updates || 0) >= 1", timeout=TIMEOUT)
    assert b.evaluate("document.getElementById('chart').dataset.lastClose") == "60000"
    expect(b.locator("#fills tbody tr[data-trade-id]")).to_have_count(1)
    expect(a.locator("#recent-trades .tr-row").first).to_contain_text("60,000.00")
    expect(a.locator("#open-orders tbody tr[data-order-id]")).to_contain_text("40")  # 40 % filled
    expect(b.locator("#ob-book .ob-row.ask").first).to_contain_text("0.3000")
    assert b.evaluate("window.__kk99NoReload") == 42, "Bob's page reloaded"
    shot(b, "3-bob-sees-trade-and-chart")

    # Alice cancels the rest from her open-orders table; Bob's book empties.
    a.locator("#open-orders button[data-cancel]").click()
    expect(a.locator("#open-orders tbody tr[data-order-id]")).to_have_count(0)
    expect(b.locator("#ob-book .ob-asks .ob-row")).to_have_count(0)
    assert b.evaluate("window.__kk99NoReload") == 42
    shot(a, "4-alice-cancelled")

    # A bad order shows an inline error and places nothing.
    buy_a = a.locator("#order-form-BUY")
    buy_a.locator("input[name=price]").fill("60000.001")
    buy_a.locator("input[name=quantity]").fill("0.1")
    buy_a.locator("button[type=submit]").click()
    expect(a.locator("#order-form-BUY .field-error")).to_contain_text("multiple of 0.01")
    expect(a.locator("#open-orders tbody tr[data-order-id]")).to_have_count(0)
    shot(a, "5-inline-error")

    # The same page on a phone.
    ctx_m = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    m = ctx_m.new_page()
    m.goto(base + "/trade/BTCUSDT/")
    wait_live(m)
    m.screenshot(path=str(ARTIFACTS / "e2e-6-phone.png"), full_page=True)
    for ctx in (ctx_a, ctx_b, ctx_m):
        ctx.close()
