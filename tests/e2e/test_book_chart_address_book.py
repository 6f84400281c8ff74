"""Browser end-to-end, issue 17's remainder, on a live server (daphne + engine) and Debian's
chromium:

* the book never shows an empty side while the demo market maker re-quotes (the bot runs
  against this server; the page's book is sampled every 50 ms);
* 20/50 book levels; RSI and MACD panes appear and go with their toggles;
* the withdrawal address book: add → confirm from the demo mailbox → whitelist-only → the
  withdraw page offers the address once usable and refuses others.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT
from tests.e2e.test_trading_ui import PASSWORD, TIMEOUT, ConsoleWatch, login, shot, wait_live

pytestmark = pytest.mark.slow
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"

COOLED_OFF = (
    "from datetime import timedelta; from django.utils import timezone; from wallets.chains.models import WithdrawalAddress;"
    " WithdrawalAddress.objects.update(usable_from=timezone.now() - timedelta(seconds=1))"
)
# Three hours of one-minute history on BTCUSDT (a random walk), for indicators with a warm-up.
# Ids far above the engine's, as tests/quant/test_bot.py does, so later engine trades never clash.
SEED_HISTORY = (
    "import datetime as dt, random; from django.db.models import F; from trading.models import Market, Trade;"
    " from tests.api.factories import write_trade; m = Market.objects.get(symbol='BTCUSDT'); random.seed(17); p = 60000.0;"
    " now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)\n"
    "for i in range(180):\n"
    "    p *= 1 + random.gauss(0, 0.002); write_trade(m, price=f'{p:.2f}', qty='0.05', at=now - dt.timedelta(minutes=183 - i, seconds=-5))\n"
    "Trade.objects.filter(market=m, maker_order__client_order_id='tape').update(trade_id=F('trade_id') + 10**9, engine_seq=F('engine_seq') + 10**9)"
)
SAMPLER = """() => {
  window.__book = [];
  window.__sampler = setInterval(() => {
    const b = document.getElementById('ob-book');
    window.__book.push([b.querySelectorAll('.ob-asks .ob-row').length, b.querySelectorAll('.ob-bids .ob-row').length]);
  }, 50);
}"""


def test_the_screens_book_never_empties_while_the_market_maker_requotes(live_exchange, browser):
    base = live_exchange.base_url
    for email in ("maker@kk99.local", "taker@kk99.local"):
        live_exchange.fund(email, {"USDT": "5000000", "BTC": "100", "ETH": "1000"}, password=PASSWORD)
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    watch = ConsoleWatch(page, base)
    page.goto(base + "/trade/BTCUSDT/")
    wait_live(page)

    bot = subprocess.Popen(
        [sys.executable, "manage.py", "demo_bot", "--base-url", base, "--iterations", "20", "--interval", "0.1", "--levels", "4"],
        cwd=ROOT, env=live_exchange.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # The first ladder (asks, then bids) reaches the page; from then on sample the screen.
        try:
            for side in ("asks", "bids"):
                page.locator(f"#ob-book .ob-{side} .ob-row").nth(3).wait_for(state="attached", timeout=90_000)
        except Exception:
            bot.kill()
            raise AssertionError(f"no ladder on the page; book: {page.inner_html('#ob-book')[:1500]}\nbot: {bot.communicate()[0][-3000:]}") from None
        page.evaluate(SAMPLER)
        out, _ = bot.communicate(timeout=600)
    finally:
        if bot.poll() is None:
            bot.kill()
    page.evaluate("clearInterval(window.__sampler)")
    samples = page.evaluate("window.__book")
    assert bot.returncode == 0, out[-2000:]
    assert len(samples) >= 40, f"only {len(samples)} samples: the bot finished too fast to tell"
    empty = [s for s in samples if not s[0] or not s[1]]
    assert not empty, f"{len(empty)} of {len(samples)} samples showed an empty side"
    assert not watch.problems, watch.problems
    ctx.close()


def test_book_depth_and_rsi_macd_panes(live_exchange, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    base = live_exchange.base_url
    live_exchange.manage("shell", "-c", SEED_HISTORY)
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    watch = ConsoleWatch(page, base)
    page.goto(base + "/trade/BTCUSDT/")
    wait_live(page)
    page.wait_for_selector("#chart[data-loaded='1']", timeout=TIMEOUT)
    assert int(page.get_attribute("#chart", "data-bars")) >= 150

    expect(page.locator("#ob-book")).to_have_attribute("data-depth", "20")
    page.select_option("#ob-depth", "50")
    expect(page.locator("#ob-book")).to_have_attribute("data-depth", "50")
    page.reload()  # the choice is kept in this browser and asked for again on connect
    wait_live(page)
    expect(page.locator("#ob-book")).to_have_attribute("data-depth", "50")

    page.wait_for_selector("#chart[data-loaded='1']", timeout=TIMEOUT)
    chart = page.locator("#chart")
    page.check("[data-indicator=rsi14]")
    expect(chart).to_have_attribute("data-panes", "3")  # price, volume, RSI
    page.check("[data-indicator=macd]")
    expect(chart).to_have_attribute("data-panes", "4")
    box = chart.bounding_box()
    assert box and box["height"] > 600  # the chart grew by the two panes
    page.uncheck("[data-indicator=rsi14]")
    expect(chart).to_have_attribute("data-panes", "3")  # its pane went with it
    page.check("[data-indicator=rsi14]")
    expect(chart).to_have_attribute("data-panes", "4")
    shot(page, "6-rsi-macd", docs="trading-indicators.png")
    assert not watch.problems, watch.problems
    ctx.close()


def test_address_book_confirm_by_email_whitelist_and_the_withdraw_page(live_exchange, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    base = live_exchange.base_url
    live_exchange.manage("chains_setup")
    live_exchange.fund("erin.e2e@example.com", {"ETH": "5"}, password=PASSWORD)
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = login(ctx, base, "erin.e2e@example.com")
    watch = ConsoleWatch(page, base)

    # From the withdraw page to the address book; a bad address is refused next to the field.
    page.goto(base + "/wallets/chains/withdraw/")
    page.click("#saved-addresses a[href$='/withdraw/addresses/']")
    page.select_option("#id_chain", "ETH")
    page.fill("#id_address", "0x123")
    page.fill("#id_label", "Ledger")
    page.click("#address-add button[type=submit]")
    expect(page.locator("#address-add .errorlist")).to_contain_text("An Ethereum address is 0x followed by 40")
    watch.problems.clear()  # the 400 answer to the bad address is expected
    page.fill("#id_address", DEST.lower())
    page.click("#address-add button[type=submit]")
    row = page.locator("#address-book tr[data-address-id]")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "unconfirmed")
    expect(row).to_contain_text(DEST)  # stored in its checksummed form

    # The confirmation link from the demo mailbox; opening it shows the address, the button confirms.
    page.goto(base + "/dev/mailbox/")
    mail = page.locator(".mail", has_text="Confirm a new withdrawal address").first
    expect(mail).to_contain_text(DEST)
    mail.locator("a.mail-link").first.click()
    expect(page.locator("#address-confirm-entry")).to_contain_text(DEST)
    page.click("#address-confirm")
    expect(row).to_have_attribute("data-state", "cooling")

    # Whitelist-only on: the withdraw page says so; the cooling address cannot be picked yet.
    page.locator("#address-whitelist button[type=submit]").click()
    expect(page.locator("#address-whitelist")).to_have_attribute("data-whitelist", "on")
    shot(page, "7-address-book", docs="address-book.png")
    page.goto(base + "/wallets/chains/withdraw/")
    expect(page.locator("#whitelist-notice")).to_be_visible()
    eth = page.locator("#id_chain_asset option", has_text="ETH on").first.get_attribute("value")
    page.select_option("#id_chain_asset", eth)
    saved = page.locator("#saved-addresses button[data-saved-chain=ETH]")
    expect(saved).to_be_disabled()

    # 24 hours later (the clock moved on the server side), it fills the address field.
    live_exchange.manage("shell", "-c", COOLED_OFF)
    page.reload()
    page.select_option("#id_chain_asset", eth)
    expect(saved).to_be_enabled()
    saved.click()
    expect(page.locator("#id_address")).to_have_value(DEST)
    shot(page, "8-withdraw-address-book", docs="withdraw.png")

    # Another address is refused in plain words; nothing is requested.
    page.fill("#id_address", OTHER)
    page.fill("#id_amount", "0.1")
    page.click("#withdraw-form button[type=submit]")
    expect(page.locator("main")).to_contain_text("Whitelist-only withdrawals are on")
    # The saved one goes through.
    page.select_option("#id_chain_asset", eth)
    saved.click()
    page.fill("#id_amount", "0.1")
    page.click("#withdraw-form button[type=submit]")
    expect(page.locator("main")).to_contain_text("requested")
    assert not watch.problems, watch.problems
    ctx.close()
