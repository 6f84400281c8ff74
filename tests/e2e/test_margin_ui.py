"""The trade page with margin orders, in a real browser (daphne + engine, as tests/e2e/
test_trading_ui.py): an order placed from the Cross and one from the Isolated account appear
in Open orders beside a spot one, each labelled by account; Cancel on the cross one removes
that row only (HTMX swap, a toast) and Order history shows it cancelled, labelled Cross."""
from __future__ import annotations

import pytest

from tests.e2e.test_trading_ui import PASSWORD, TIMEOUT, login, shot, toasted, wait_live

pytestmark = pytest.mark.slow


def _place(page, wallet: str, price: str) -> None:
    form = page.locator("#order-form-BUY")
    form.locator("select[name=wallet]").select_option(wallet)
    form.locator("input[name=price]").fill(price)
    form.locator("input[name=quantity]").fill("0.01")
    form.locator("button[type=submit]").click()


def test_margin_orders_show_in_open_orders_by_account_and_cancel_from_the_table(live_exchange, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    email = "margin.e2e@example.com"
    live_exchange.fund(email, {"USDT": "100000"}, password=PASSWORD)
    for symbol in ("", "BTCUSDT"):
        live_exchange.manage("shell", "-c", f"from tests.e2e.support import margin_fund; margin_fund({email!r}, 'USDT', '5000', isolated_symbol={symbol!r})")
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = login(ctx, live_exchange.base_url, email)
    page.goto(live_exchange.base_url + "/trade/BTCUSDT/")
    wait_live(page)

    rows = page.locator("#open-orders tbody tr[data-order-id]")
    for n, (wallet, price) in enumerate((("spot", "59000"), ("cross", "59001"), ("isolated", "59002")), start=1):
        _place(page, wallet, price)
        expect(rows).to_have_count(n)
    for label in ("Spot", "Cross", "Isolated"):
        expect(page.locator(f"#open-orders tr[data-account={label}] td.account")).to_have_text(label)
    shot(page, "margin-1-open-orders-by-account")

    page.locator("#open-orders tr[data-account=Cross] button[data-cancel]").click()
    toasted(page, "Order cancelled")
    expect(rows).to_have_count(2)
    expect(page.locator("#open-orders tr[data-account=Cross]")).to_have_count(0)
    expect(page.locator("#order-history tr[data-account=Cross][data-status=CANCELED]")).to_have_count(1)
    shot(page, "margin-2-cross-cancelled")
    ctx.close()
