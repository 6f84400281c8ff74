"""Browser end-to-end on a live server (daphne + engine), Debian's chromium.

* every main page loads with no console error (CSP violations included), no failed request
  and no 4xx/5xx response — anonymous and signed in, /api/docs/ included;
* a new trader's journey: sign up → verify through the demo mailbox → funded → deposit page
  (address, copy, QR) → limit order with its "placed" toast → a second browser crosses it →
  the fill toast and the balances change → cancel-all → withdraw form with available and fee;
  the second browser sees book, trades and chart live without reloading;
* the trading page at 390 px: no horizontal scroll, the Buy/Sell switch and the Chart/Book/
  Trades tabs work; other pages do not scroll sideways either.

Screenshots go to test-artifacts/ (and, with KK99_UPDATE_SCREENSHOTS=1, to docs/screenshots/)."""
from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.e2e.conftest import ARTIFACTS, ROOT

pytestmark = pytest.mark.slow
PASSWORD = "e2e-Trader-pass-9931"
TIMEOUT = 15_000
DOCS_SHOTS = ROOT / "docs" / "screenshots"

PUBLIC_PAGES = ["/", "/markets/", "/trade/BTCUSDT/", "/trade/ETHUSDT/", "/login/", "/register/", "/password-reset/", "/api/docs/", "/dev/mailbox/"]
PRIVATE_PAGES = [
    "/dashboard/", "/portfolio/", "/orders/", "/fills/", "/wallets/chains/deposit/", "/wallets/chains/withdraw/", "/wallets/chains/withdraw/addresses/",
    "/wallets/journal/", "/security/", "/api-keys/", "/kyc/", "/trade/BTCUSDT/", "/dev/mailbox/",
]


def shot(page, name: str, *, docs: str | None = None, full_page: bool = False) -> None:
    path = ARTIFACTS / f"e2e-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if docs and os.environ.get("KK99_UPDATE_SCREENSHOTS"):
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / docs)


def wait_live(page) -> None:
    page.wait_for_selector("#live-indicator[data-state=live]", timeout=TIMEOUT)


class ConsoleWatch:
    """Collects what a careful developer would see in the browser's console and network tab."""

    def __init__(self, page, base: str) -> None:
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # ERR_ABORTED is the browser cancelling the previous page's requests on navigation.
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}") if r.url.startswith(base) and "ERR_ABORTED" not in (r.failure or "") else None)
        page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)


def toasted(page, title: str, text: str = "") -> None:
    """Waits until the page has shown a toast (kept in KK99.toastLog: a toast fades after
    a few seconds, which on a slow machine can be before the test looks)."""
    page.wait_for_function(
        "([t, x]) => (window.KK99 && window.KK99.toastLog || []).some(e => e.title.includes(t) && e.text.includes(x))",
        arg=[title, text], timeout=TIMEOUT,
    )


def login(ctx, base: str, email: str):
    page = ctx.new_page()
    page.goto(base + "/login/")
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/.*"), timeout=TIMEOUT)
    page.wait_for_load_state("networkidle")
    return page


def test_main_pages_have_no_console_errors_or_failed_requests(live_exchange, browser):
    base = live_exchange.base_url
    live_exchange.manage("chains_setup")  # deposit and withdraw pages with their assets
    live_exchange.fund("carol.e2e@example.com", {"USDT": "1000"}, password=PASSWORD)
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    watch = ConsoleWatch(page, base)
    seen: dict[str, list[str]] = {}
    for path in PUBLIC_PAGES:
        watch.problems.clear()
        page.goto(base + path, wait_until="networkidle")
        seen[path] = list(watch.problems)
    # Swagger UI rendered the schema (it was blank under the CSP with the CDN build).
    page.goto(base + "/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=TIMEOUT)

    page = login(ctx, base, "carol.e2e@example.com")
    watch = ConsoleWatch(page, base)
    for path in PRIVATE_PAGES:
        watch.problems.clear()
        page.goto(base + path, wait_until="networkidle")
        seen["(signed in) " + path] = list(watch.problems)
    ctx.close()
    bad = {path: problems for path, problems in seen.items() if problems}
    assert not bad, bad


def test_favicon_is_served(live_exchange):
    import urllib.request

    with urllib.request.urlopen(live_exchange.base_url + "/favicon.ico", timeout=10) as r:
        assert r.status == 200
        assert b"<svg" in r.read()


def test_new_trader_journey(live_exchange, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    base = live_exchange.base_url
    live_exchange.manage("chains_setup")

    # Alice signs up; until her email is verified the order form says what to do.
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
    a.goto(base + "/trade/BTCUSDT/")
    expect(a.locator("#trade-notice")).to_contain_text("verify your email")

    # She opens the verification link from the demo mailbox (linked from the dashboard).
    a.goto(base + "/dashboard/")
    a.click("#demo-mailbox-link")
    expect(a.locator(".mail h2").first).to_contain_text("Verify your email")
    a.locator(".mail a.mail-link").first.click()
    expect(a.locator("main")).to_contain_text("verified")
    a.goto(base + "/trade/BTCUSDT/")
    expect(a.locator("#trade-notice")).to_have_count(0)

    # Funded (the demo has no faucet in the browser); the deposit page shows her address.
    live_exchange.fund("alice.e2e@example.com", {"USDT": "100000", "BTC": "2"})
    a.goto(base + "/dashboard/")
    a.click("main a[href$='/wallets/chains/deposit/']")
    expect(a.locator("#deposit-address code")).not_to_be_empty()
    expect(a.locator("#deposit-address .qr-box img")).to_be_visible()
    a.locator("#deposit-address button[data-copy]").click()
    toasted(a, "Copied")
    shot(a, "0-deposit", docs="deposit.png")

    # Bob (already a customer) watches the BTCUSDT page.
    live_exchange.fund("bob.e2e@example.com", {"USDT": "100000", "BTC": "2"}, password=PASSWORD)
    ctx_b = browser.new_context(viewport={"width": 1440, "height": 900})
    b = login(ctx_b, base, "bob.e2e@example.com")
    b.goto(base + "/trade/BTCUSDT/")
    wait_live(b)
    b.evaluate("window.__kk99NoReload = 42")
    b.wait_for_selector("#chart[data-loaded='1']", timeout=TIMEOUT)

    # A bad price is flagged next to the field before submitting, and cleared when fixed.
    a.goto(base + "/trade/BTCUSDT/")
    wait_live(a)
    sell = a.locator("#order-form-SELL")
    sell.locator("input[name=price]").fill("abc")
    expect(sell.locator("[data-error-for=price]")).to_contain_text("must be a number")
    sell.locator("input[name=price]").fill("60000")
    expect(sell.locator("[data-error-for=price]")).to_be_hidden()

    # Alice places a limit sell: inline status and a toast.
    sell.locator("input[name=quantity]").fill("0.5")
    sell.locator("button[type=submit]").click()
    expect(a.locator("#order-form-SELL .form-ok")).to_contain_text("placed")
    toasted(a, "Order placed", "Sell 0.5000 BTC at 60,000.00")
    expect(a.locator("#open-orders tbody tr[data-order-id]")).to_have_count(1)
    expect(a.locator("#ob-book .ob-row.ask.own")).to_have_count(1)  # her order marked in the book
    shot(a, "1-alice-order-placed")

    # Bob's book shows it without a reload; grouped by 10 USDT it reads 60,000; he crosses it.
    expect(b.locator("#ob-book .ob-row.ask").first).to_contain_text("60,000.00")
    b.select_option("#ob-group", "10")
    expect(b.locator("#ob-book .ob-row.ask").first.locator("span").first).to_have_text("60,000")
    b.select_option("#ob-group", "0.01")
    expect(b.locator("#ob-book .ob-row.ask").first.locator("span").first).to_have_text("60,000.00")
    buy = b.locator("#order-form-BUY")
    buy.locator("input[name=price]").fill("60000")
    buy.locator("input[name=quantity]").fill("0.2")
    buy.locator("button[type=submit]").click()
    expect(b.locator("#recent-trades .tr-row").first).to_contain_text("60,000.00")
    b.wait_for_function("Number(document.getElementById('chart').dataset.updates || 0) >= 1", timeout=TIMEOUT)
    assert b.evaluate("document.getElementById('chart').dataset.lastClose") == "60000"
    toasted(b, "Bought 0.2000 BTC", "at 60,000.00 USDT")
    assert b.evaluate("window.__kk99NoReload") == 42, "Bob's page reloaded"

    # Alice sees the fill toast and her balances change; the tab title follows the price.
    toasted(a, "Sold 0.2000 BTC", "at 60,000.00 USDT")
    expect(a.locator("#trade-balances [data-balance=USDT]")).to_contain_text("111,988")  # 100,000 + 12,000 − 0.1 % fee
    expect(a.locator("#open-orders tbody tr[data-order-id]")).to_contain_text("40")  # 40 % filled
    assert "60,000.00" in a.title()
    shot(a, "2-alice-fill-toast", docs="trading.png")
    shot(b, "3-bob-sees-trade-and-chart")

    # A second order, then cancel-all: both go, with a toast each; Bob's book empties.
    sell.locator("input[name=price]").fill("61000")
    sell.locator("input[name=quantity]").fill("0.1")
    sell.locator("button[type=submit]").click()
    expect(a.locator("#open-orders tbody tr[data-order-id]")).to_have_count(2)
    a.locator("#open-orders button[data-cancel-all]").click()
    expect(a.locator("#open-orders tbody tr[data-order-id]")).to_have_count(0)
    toasted(a, "Order cancelled", "0.2000 filled")  # the partly filled one says how much
    toasted(a, "Order cancelled", "Sell 0.1000 BTC")
    expect(b.locator("#ob-book .ob-asks .ob-row")).to_have_count(0)
    a.locator("[role=tab][data-tab=order-history]").click()
    expect(a.locator("#order-history tbody tr[data-status=CANCELED]")).to_have_count(2)
    shot(a, "4-alice-cancelled-all")

    # An order the engine refuses says why, in plain words, next to the field.
    buy_a = a.locator("#order-form-BUY")
    buy_a.locator("input[name=price]").fill("60000")
    buy_a.locator("input[name=quantity]").fill("0.00001")
    buy_a.locator("button[type=submit]").click()
    expect(buy_a.locator("[data-error-for=quantity]")).to_contain_text("amount")
    expect(a.locator("#open-orders tbody tr[data-order-id]")).to_have_count(0)

    # The withdraw form shows what she has, the fee and the most she can send.
    a.goto(base + "/wallets/chains/withdraw/")
    expect(a.locator("#withdraw-info [data-choose]")).to_be_visible()
    btc = a.locator("#id_chain_asset option", has_text="BTC on").first.get_attribute("value")
    a.select_option("#id_chain_asset", btc)
    info = a.locator("#withdraw-info dl:not([hidden])")
    expect(info).to_have_count(1)
    expect(info).to_contain_text("1.8 BTC")  # 2 − 0.2 sold
    expect(info).to_contain_text("Available")
    expect(info).to_contain_text("Network fee")
    expect(info.locator("[data-max]")).not_to_be_empty()
    assert "E+" not in a.content(), "a number in scientific notation"
    info.locator("button[data-fill-target]").click()
    expect(info.locator("[data-total]")).not_to_have_text("—")
    shot(a, "5-withdraw", docs="withdraw.png")
    for ctx in (ctx_a, ctx_b):
        ctx.close()


def test_phone_layout_has_no_horizontal_scroll_and_a_buy_sell_switch(live_exchange, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    base = live_exchange.base_url
    live_exchange.fund("dave.e2e@example.com", {"USDT": "1000", "BTC": "1"}, password=PASSWORD)
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    m = login(ctx, base, "dave.e2e@example.com")
    wide = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    for path in ("/", "/markets/", "/dashboard/", "/portfolio/", "/orders/", "/wallets/chains/deposit/", "/wallets/chains/withdraw/"):
        m.goto(base + path, wait_until="networkidle")
        assert m.evaluate(wide) <= 0, f"{path} scrolls sideways"
    m.goto(base + "/trade/BTCUSDT/")
    wait_live(m)
    assert m.evaluate(wide) <= 0, "the trading page scrolls sideways"
    expect(m.locator("#order-form-BUY")).to_be_visible()
    expect(m.locator("#order-form-SELL")).to_be_hidden()
    m.locator(".side-switch [data-tab=SELL]").click()
    expect(m.locator("#order-form-SELL")).to_be_visible()
    expect(m.locator("#order-form-BUY")).to_be_hidden()
    m.locator(".view-switch [data-tab=book]").click()
    expect(m.locator(".book-panel")).to_be_visible()
    expect(m.locator(".chart-panel")).to_be_hidden()
    shot(m, "6-phone", docs="trading-mobile.png", full_page=True)
    m.locator(".view-switch [data-tab=chart]").click()
    expect(m.locator(".chart-panel")).to_be_visible()
    assert m.evaluate(wide) <= 0
    ctx.close()
