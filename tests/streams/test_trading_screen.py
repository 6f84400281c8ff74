"""The trading screen's server side (issue 17): plain-words errors next to their field, the
order outcome, cancel-all, funding links, the tier-0 notice, the one number formatter (Python
and the page's JavaScript agree), the demo mailbox, and the API docs page under the CSP."""
from __future__ import annotations

import json
import shutil
import subprocess
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from kk99.numbers import fmt_amount, fmt_fixed
from trading.models import Order

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def alice_client(alice):
    c = Client()
    c.force_login(alice)
    return c


def _post_order(client, **fields):
    data = {"side": "BUY", "type": "LIMIT", **fields}
    return client.post(reverse("trading:order_create", args=["BTCUSDT"]), data, **HX).content.decode()


# --- errors in plain words, next to the field ------------------------------------------------


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"price": "100", "quantity": "1.0005"}, "quantity", "The amount must be a multiple of 0.001 BTC."),
    ({"price": "100", "quantity": "5000"}, "quantity", "The amount must be between 0.001 and 1,000 BTC."),
    ({"price": "100.001", "quantity": "1"}, "price", "The price must be a multiple of 0.01 USDT."),
    ({"price": "", "quantity": "1"}, "price", "Enter the price."),
    ({"price": "abc", "quantity": "1"}, "price", "The price must be a positive number"),
    ({"price": "60", "quantity": "0.01"}, "quantity", "The order is too small: its total must be at least 1 USDT."),
])
def test_refused_order_is_explained_in_plain_words_next_to_its_field(market, alice_client, fields, field, words):
    body = _post_order(alice_client, **fields)
    assert f'data-error-for="{field}">{words}' in body
    assert "Filter failure" not in body and "LOT_SIZE" not in body and "PRICE_FILTER" not in body
    assert not Order.objects.exists()


def test_insufficient_balance_names_the_asset_and_the_amount_needed(market, alice_client):
    body = _post_order(alice_client, side="SELL", price="100", quantity="999")
    assert "Not enough BTC: this order needs 999 BTC available." in body
    assert 'data-toast="Order not placed"' in body


def test_placed_order_answers_with_its_outcome_and_a_toast(market, alice_client):
    body = _post_order(alice_client, side="SELL", price="101.5", quantity="0.5")
    order = Order.objects.get()
    assert f"Sell 0.500 BTC at 101.50: order #{order.pk} placed." in body
    assert 'data-toast="Order placed"' in body


def test_engine_reject_reasons_read_as_plain_words():
    from trading.streams.fragments import reject_reason_text

    assert reject_reason_text("would_trigger_immediately") == "the stop price was already reached; use a limit order"
    assert reject_reason_text("market_halt") == "the market is halt"
    assert reject_reason_text("some_new_code") == "some new code"
    assert reject_reason_text("") == ""


# --- cancel-all --------------------------------------------------------------------------------


def test_cancel_all_flags_every_open_order_of_the_user_in_the_market_only(market, alice, bob, alice_client):
    for price in ("101", "102"):
        _post_order(alice_client, side="SELL", price=price, quantity="0.5")
    bob_client = Client()
    bob_client.force_login(bob)
    _post_order(bob_client, side="SELL", price="103", quantity="0.5")

    r = alice_client.post(reverse("trading:order_cancel_all", args=["BTCUSDT"]), **HX)

    assert r.status_code == 200 and "Cancelling 2 orders." in r.content.decode()
    assert sorted(Order.objects.filter(user=alice).values_list("cancel_requested", flat=True)) == [True, True]
    assert not Order.objects.get(user=bob).cancel_requested


def test_cancel_all_needs_a_login_and_a_post(market, alice_client):
    assert Client().post(reverse("trading:order_cancel_all", args=["BTCUSDT"])).status_code == 302
    assert alice_client.get(reverse("trading:order_cancel_all", args=["BTCUSDT"])).status_code == 405


# --- first hour: the tier-0 notice and the demo mailbox ----------------------------------------


def test_unverified_account_is_told_what_to_do_before_filling_the_form(market, django_user_model):
    user = django_user_model.objects.create_user(email="new@example.com", password="pw-not-used-123")
    c = Client()
    c.force_login(user)
    body = c.get(reverse("trading:trade", args=["BTCUSDT"])).content.decode()
    assert 'id="trade-notice" data-notice="verify_email"' in body
    assert body.count('disabled aria-describedby="trade-notice"') == 2  # both submit buttons


def test_verified_trader_sees_no_notice(market, alice_client):
    assert 'id="trade-notice"' not in alice_client.get(reverse("trading:trade", args=["BTCUSDT"])).content.decode()


def test_demo_mailbox_shows_the_users_own_verification_link(settings, tmp_path, django_user_model):
    from accounts.services import email_verification_send

    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    alice = django_user_model.objects.create_user(email="alice.mail@example.com", password="pw-not-used-123")
    bob = django_user_model.objects.create_user(email="bob.mail@example.com", password="pw-not-used-123")
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        email_verification_send(user=alice, request=None)
        email_verification_send(user=bob, request=None)
    c = Client()
    c.force_login(alice)

    body = c.get(reverse("dev-mailbox")).content.decode()

    assert "Verify your email" in body and "/verify-email/" in body
    assert body.count('class="card mail"') == 1  # Bob's mail is not shown to Alice


def test_demo_mailbox_shows_nothing_to_visitors_when_debug_is_off(settings, tmp_path, django_user_model):
    from django.test import TestCase

    from accounts.services import email_verification_send

    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    settings.DEBUG = False
    alice = django_user_model.objects.create_user(email="alice.mail@example.com", password="pw-not-used-123")
    with TestCase.captureOnCommitCallbacks(execute=True):
        email_verification_send(user=alice, request=None)

    body = Client().get(reverse("dev-mailbox"), {"to": "alice.mail@example.com"}).content.decode()

    assert "/verify-email/" not in body and "Log in" in body


def test_demo_mailbox_is_a_404_with_a_real_email_backend(settings, alice_client):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert alice_client.get(reverse("dev-mailbox")).status_code == 404


# --- funding in reach -----------------------------------------------------------------------


def test_deposit_and_withdraw_are_linked_from_menu_dashboard_portfolio_and_trade_page(market, alice_client):
    deposit, withdraw = reverse("chains:deposit"), reverse("chains:withdraw")
    for name, args in (("accounts:dashboard", []), ("trading:portfolio", []), ("trading:trade", ["BTCUSDT"]), ("trading:markets", [])):
        body = alice_client.get(reverse(name, args=args)).content.decode()
        assert body.count(f'href="{deposit}"') >= 1 and body.count(f'href="{withdraw}"') >= 1, name
    body = alice_client.get(reverse("trading:portfolio")).content.decode()
    assert body.count(f'href="{deposit}"') >= 3  # menu, summary and one per asset row


def test_home_page_lists_the_live_markets(market):
    body = Client().get("/").content.decode()
    assert 'id="mkt-BTCUSDT"' in body and 'ws-connect="/ws/ui/markets/"' in body
    assert "coming soon" not in body


# --- the one number formatter -------------------------------------------------------------------


def test_formatter_examples():
    assert fmt_fixed(D("60000"), 2) == "60,000.00"
    assert fmt_fixed(D("-0.001"), 2) == "0.00"
    assert fmt_amount(D("0.000001000")) == "0.000001"
    assert fmt_amount(D("1E+1")) == "10"
    assert fmt_amount(D("1.999999999")) == "1.99999999"  # cut, never rounded up past a balance
    assert fmt_fixed(None, 2) == fmt_amount("x") == "—"


decimals = st.decimals(min_value=D("-1e12"), max_value=D("1e12"), allow_nan=False, allow_infinity=False, places=12)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@hsettings(max_examples=200, deadline=None)
@given(values=st.lists(st.tuples(decimals, st.integers(0, 10)), min_size=30, max_size=30))
def test_javascript_formatter_matches_python(values):
    """static/js/kk99.js KK99.fmt / fmtAmount give the same strings as kk99.numbers."""
    cases = [[str(v), p] for v, p in values] + [[f"{v:E}", p] for v, p in values[:10]]
    script = (
        "global.window={};global.document={readyState:'loading',addEventListener(){}};"
        f"require({json.dumps(str(ROOT / 'static/js/kk99.js'))});"
        f"const cases={json.dumps(cases)};"
        "console.log(JSON.stringify(cases.map(([v,p])=>[window.KK99.fmt(v,p),window.KK99.fmtAmount(v,p)])));"
    )
    out = json.loads(subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, timeout=60).stdout)
    assert out == [[fmt_fixed(D(v), p), fmt_amount(D(v), p)] for v, p in cases]


def test_templates_show_no_scientific_notation(market, alice_client):
    body = alice_client.get(reverse("trading:trade", args=["BTCUSDT"])).content.decode()
    assert "E+" not in body and "E-" not in body


# --- front-end hygiene (issue 9 item 8) ------------------------------------------------------------


def test_api_docs_page_uses_only_local_scripts_and_no_inline_code(db):
    r = Client().get("/api/docs/")
    body = r.content.decode()
    assert r.status_code == 200
    assert "<script>" not in body and "<style>" not in body and "cdn" not in body.lower()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in body
    script = Client().get("/api/docs/?script")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_favicon_is_linked_and_served(db):
    body = Client().get("/login/").content.decode()
    assert 'rel="icon"' in body
    r = Client().get("/favicon.ico")
    assert r.status_code == 301 and r["Location"].endswith("favicon.svg")


# --- the Orders page: filters and CSV ---------------------------------------------------------------


def test_orders_page_filters_by_side_and_status_and_exports_exact_csv(market, alice, alice_client):
    _post_order(alice_client, side="SELL", price="101.5", quantity="0.5")
    _post_order(alice_client, side="BUY", price="99.25", quantity="1.25")
    Order.objects.filter(side="BUY").update(status=Order.Status.CANCELED)
    url = reverse("trading:orders")

    sells = alice_client.get(url, {"side": "SELL"}).content.decode()
    cancelled = alice_client.get(url, {"status": "CANCELED"}).content.decode()
    csv_body = alice_client.get(url, {"status": "open", "format": "csv"})

    assert sells.count("data-order-id=") == 1 and "101.50" in sells
    assert cancelled.count("data-order-id=") == 1 and "99.25" in cancelled
    assert csv_body["Content-Type"].startswith("text/csv")
    lines = csv_body.content.decode().strip().splitlines()
    assert len(lines) == 2 and lines[1].split(",")[2:8] == ["BTCUSDT", "SELL", "LIMIT", "101.5", "", "0.5"]


def test_orders_page_with_a_bad_filter_says_so_and_shows_everything(market, alice_client):
    body = alice_client.get(reverse("trading:orders"), {"start": "not-a-date"}).content.decode()
    assert "Check the filters" in body


def test_trade_history_filters_by_side_and_exports_exact_csv(market, exchange, alice, bob):
    from asgiref.sync import async_to_sync

    async_to_sync(exchange.place)(alice, "SELL", "100.00", "1")
    async_to_sync(exchange.place)(bob, "BUY", "100.00", "0.4")
    async_to_sync(exchange.match)()
    c = Client()
    c.force_login(alice)
    url = reverse("trading:fills")

    assert c.get(url, {"side": "SELL"}).content.decode().count("data-trade-id=") == 1
    assert c.get(url, {"side": "BUY"}).content.decode().count("data-trade-id=") == 0
    lines = c.get(url, {"format": "csv"}).content.decode().strip().splitlines()
    assert len(lines) == 2 and lines[1].split(",")[2:7] == ["BTCUSDT", "SELL", "100", "0.4", "40"]


def test_klines_end_returns_only_older_bars_and_refuses_a_bad_end(market, exchange, alice, bob):
    import time

    from asgiref.sync import async_to_sync

    async_to_sync(exchange.place)(alice, "SELL", "100.00", "1")
    async_to_sync(exchange.place)(bob, "BUY", "100.00", "1")
    async_to_sync(exchange.match)()
    url = reverse("trading:klines", args=["BTCUSDT"])
    now = Client().get(url, {"interval": "1m"}).json()["candles"]
    before = Client().get(url, {"interval": "1m", "end": str(now[0]["time"] - 1)}).json()["candles"]
    assert len(now) == 1 and before == []
    assert Client().get(url, {"interval": "1m", "end": str(int(time.time()) + 60)}).json()["candles"] == now
    assert Client().get(url, {"interval": "1m", "end": "soon"}).status_code == 400


def test_balance_history_says_trading_not_engine_batch_numbers(market, exchange, alice, bob):
    from asgiref.sync import async_to_sync

    async_to_sync(exchange.place)(alice, "SELL", "100.00", "1")
    async_to_sync(exchange.place)(bob, "BUY", "100.00", "0.4")
    async_to_sync(exchange.match)()
    c = Client()
    c.force_login(alice)

    body = c.get(reverse("wallets:journal")).content.decode()

    assert "Trading" in body and "BTCUSDT: fills" in body
    assert "engine batch" not in body and "Trade settlement" not in body
