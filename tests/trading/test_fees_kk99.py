"""Paying trading fees in the KK99 token (issue 6): opt-in, discount, fallback, audit."""
from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests.fixtures import fund, market_create, place
from trading.fees import kk99_fee_amount
from trading.models import Market, Trade
from trading.services import fee_preference_set
from wallets.audit import ledger_audit_run
from wallets.chains.token import token_asset, token_supply_approve, token_supply_report, token_supply_request
from wallets.models import Balance, SystemAccountKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def kk99(db):
    return token_asset()


@pytest.fixture
def carol(trader):
    return trader()


@pytest.fixture
def issue_kk99(make_user, kk99):
    """Issue KK99 to a user through the real two-person flow (so the supply report stays clean)."""
    perms = Permission.objects.filter(codename__in=["approve_token_supply"])
    staff = []
    for email in ("staff@kk99.local", "finance@kk99.local"):
        member = make_user(email, is_staff=True)
        member.user_permissions.add(*perms)
        staff.append(type(member).objects.get(pk=member.pk))

    def issue(user, amount):
        supply = token_supply_request(staff=staff[0], kind="issue", amount=D(amount), holder=user, reason="test")
        token_supply_approve(request_id=supply.pk, staff=staff[1])

    return issue


def _available(user, asset) -> D:
    row = Balance.objects.filter(account__user=user, asset=asset).first()
    return row.available if row else D(0)


def _fees(asset) -> D:
    row = Balance.objects.filter(account__system_kind=SystemAccountKind.FEES, asset=asset).first()
    return row.available if row else D(0)


def _trade_once(engine, market, maker, taker):
    place(maker, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    place(taker, market, "BUY", quantity="1", price="100")
    engine.run_until_idle()
    return Trade.objects.get(market=market)


def _assert_audits_clean():
    report = ledger_audit_run()
    assert report.ok, report
    assert token_supply_report()["ok"]


def test_an_opted_in_taker_pays_the_fee_in_kk99_at_the_discount(engine, market, alice, bob, btc, usdt, kk99, issue_kk99):
    # Arrange: bob (maker) sells 1 BTC at 100; alice (taker, opted in, 1,000 KK99) buys.
    issue_kk99(alice, "1000")
    fee_preference_set(user=alice, pay_fees_in_kk99=True)
    btc_before = _available(alice, btc)
    # Act
    trade = _trade_once(engine, market, bob, alice)
    # Assert: taker fee 0.002 BTC = 0.2 USDT at the trade price; KK99 at the reference 1 USDT,
    # 25 % off → 0.15 KK99. She receives the whole BTC; FEES gets KK99, no BTC from her.
    assert (trade.taker_fee, trade.taker_fee_asset_id) == (D("0.15"), kk99.pk)
    assert _available(alice, btc) == btc_before + 1
    assert _available(alice, kk99) == D("999.85")
    assert _fees(kk99) == D("0.15") and _fees(btc) == 0
    # bob did not opt in: his maker fee stays in USDT (0.1 % of 100).
    assert (trade.maker_fee, trade.maker_fee_asset_id) == (D("0.1"), usdt.pk)
    _assert_audits_clean()


def _kk99_market_trades(kk99, usdt, maker, taker, *, price, times):
    """``times`` trades of 1 KK99 at ``price`` on KK99USDT between ``maker`` and ``taker``
    (the same user = self-trades), through the real order path and the market's own engine."""
    from trading.engine.core import MarketEngine

    kk99_market = Market.objects.filter(symbol="KK99USDT").first() or market_create("KK99USDT", kk99, usdt, reference_price=D(price))
    engine = MarketEngine("KK99USDT", owner="test-kk99")
    engine.start()
    for _ in range(times):
        place(maker, kk99_market, "SELL", quantity="1", price=price, stp_mode="NONE")
        place(taker, kk99_market, "BUY", quantity="1", price=price, stp_mode="NONE")
        engine.run_until_idle()
    return kk99_market


def test_the_kk99_price_comes_from_trades_between_different_users_on_kk99usdt(engine, market, alice, bob, carol, usdt, kk99, issue_kk99):
    # Arrange: carol sells KK99 to alice at 2 USDT (a real trade between two users).
    issue_kk99(carol, "10")
    _kk99_market_trades(kk99, usdt, carol, alice, price="2", times=1)
    issue_kk99(bob, "10")
    fee_preference_set(user=bob, pay_fees_in_kk99=True)
    # Act
    trade = _trade_once(engine, market, bob, alice)
    # Assert: bob's maker fee: 0.1 USDT → 0.05 KK99 at 2 USDT → 0.0375 after 25 % off.
    assert (trade.maker_fee, trade.maker_fee_asset_id) == (D("0.0375"), kk99.pk)
    assert _available(bob, kk99) == D("9.9625")
    _assert_audits_clean()


def test_twelve_small_self_trades_do_not_cut_the_kk99_fee(engine, market, alice, bob, usdt, kk99, issue_kk99):
    # Arrange: bob self-trades KK99USDT twelve times at 100 USDT (pushing a last-trade price up
    # 100× would cut his KK99 fee 100×).
    issue_kk99(bob, "20")
    fund(bob, usdt, "2000")
    _kk99_market_trades(kk99, usdt, bob, bob, price="100", times=12)
    fee_preference_set(user=bob, pay_fees_in_kk99=True)
    # Act
    trade = _trade_once(engine, market, bob, alice)
    # Assert: the fee price is still the configured 1 USDT: 0.1 USDT fee → 0.075 KK99.
    assert (trade.maker_fee, trade.maker_fee_asset_id) == (D("0.075"), kk99.pk)
    _assert_audits_clean()


def test_the_kk99_fee_price_is_bounded_by_the_configured_ceiling(settings, engine, market, alice, bob, carol, usdt, kk99, issue_kk99):
    # Arrange: a real trade at 100 USDT, but the operator bounds the fee price to [0.5, 2].
    settings.KK99 = {**settings.KK99, "KK99_FEE_PRICE_FLOOR": D("0.5"), "KK99_FEE_PRICE_CEILING": D("2")}
    issue_kk99(carol, "10")
    fund(alice, usdt, "1000")
    _kk99_market_trades(kk99, usdt, carol, alice, price="100", times=1)
    issue_kk99(bob, "10")
    fee_preference_set(user=bob, pay_fees_in_kk99=True)
    # Act
    trade = _trade_once(engine, market, bob, alice)
    # Assert: priced at the ceiling, 2 USDT: 0.1 → 0.0375 KK99.
    assert (trade.maker_fee, trade.maker_fee_asset_id) == (D("0.0375"), kk99.pk)


def test_the_reference_source_ignores_the_market(settings, engine, market, alice, bob, carol, usdt, kk99, issue_kk99):
    settings.KK99 = {**settings.KK99, "KK99_FEE_PRICE_SOURCE": "reference"}
    issue_kk99(carol, "10")
    _kk99_market_trades(kk99, usdt, carol, alice, price="2", times=1)
    issue_kk99(bob, "10")
    fee_preference_set(user=bob, pay_fees_in_kk99=True)
    trade = _trade_once(engine, market, bob, alice)
    assert (trade.maker_fee, trade.maker_fee_asset_id) == (D("0.075"), kk99.pk)


def test_kk99_twap_is_none_without_trades():
    from datetime import timedelta

    from django.utils import timezone

    from trading.fees import kk99_twap

    # No trades at all: no TWAP (the caller falls back to the configured price).
    assert kk99_twap(symbol="NOPE", now=timezone.now(), window=timedelta(hours=1)) is None


def test_self_trades_never_count_toward_fee_tiers(settings, engine, market, alice, bob, btc, usdt):
    # Arrange: anyone with 100 USDT of 30-day volume trades for free; alice self-trades 12 ×
    # 1 BTC at 100 (1,200 USDT of "volume" that cost her nothing but fees).
    settings.KK99 = {
        **settings.KK99,
        "FEE_TIERS": [
            {"min_volume": D("0"), "maker_multiplier": D("1"), "taker_multiplier": D("1")},
            {"min_volume": D("100"), "maker_multiplier": D("0"), "taker_multiplier": D("0")},
        ],
    }
    for _ in range(12):
        place(alice, market, "SELL", quantity="1", price="100", stp_mode="NONE")
        place(alice, market, "BUY", quantity="1", price="100", stp_mode="NONE")
        engine.run_until_idle()
    assert Trade.objects.filter(maker_user=alice, taker_user=alice).count() == 12
    # Act: her first trade with someone else.
    place(bob, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    place(alice, market, "BUY", quantity="1", price="100")
    engine.run_until_idle()
    # Assert: she pays the full taker fee (0.2 % of 1 BTC).
    trade = Trade.objects.get(market=market, maker_user=bob)
    assert trade.taker_fee == D("0.002")


def test_without_enough_kk99_the_normal_fee_is_charged(engine, market, alice, bob, btc, kk99, issue_kk99):
    issue_kk99(alice, "0.1")  # the KK99 fee would be 0.15
    fee_preference_set(user=alice, pay_fees_in_kk99=True)
    btc_before = _available(alice, btc)
    trade = _trade_once(engine, market, bob, alice)
    assert (trade.taker_fee, trade.taker_fee_asset_id) == (D("0.002"), btc.pk)
    assert _available(alice, btc) == btc_before + D("0.998")
    assert _available(alice, kk99) == D("0.1") and _fees(kk99) == 0
    _assert_audits_clean()


def test_the_kk99_budget_is_spent_fill_by_fill_within_a_batch(engine, market, alice, bob, btc, kk99, issue_kk99):
    # Arrange: enough KK99 for one 0.15 fee, not two; two fills in ONE batch.
    issue_kk99(alice, "0.2")
    fee_preference_set(user=alice, pay_fees_in_kk99=True)
    place(bob, market, "SELL", quantity="1", price="100")
    place(bob, market, "SELL", quantity="1", price="100")
    engine.run_until_idle()
    place(alice, market, "BUY", quantity="2", price="100")
    engine.run_until_idle()
    fees = list(Trade.objects.filter(market=market).order_by("trade_id").values_list("taker_fee", "taker_fee_asset_id"))
    assert fees == [(D("0.15"), kk99.pk), (D("0.002"), btc.pk)]
    assert _available(alice, kk99) == D("0.05")
    _assert_audits_clean()


def test_opting_out_restores_the_normal_fee(engine, market, alice, bob, btc, kk99, issue_kk99):
    issue_kk99(alice, "1000")
    fee_preference_set(user=alice, pay_fees_in_kk99=True)
    fee_preference_set(user=alice, pay_fees_in_kk99=False)
    trade = _trade_once(engine, market, bob, alice)
    assert trade.taker_fee_asset_id == btc.pk and _available(alice, kk99) == D("1000")


def test_kk99_fee_rounds_up_by_at_most_one_unit():
    exact = D("1") / D("3") * D("0.75")
    charged = kk99_fee_amount(fee_value_usdt=D("1"), kk99_price=D("3"), discount=D("0.25"), precision=8)
    assert charged >= exact and charged - exact < D("0.00000001")


def test_the_fee_preference_api_toggles_the_choice(alice):
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(alice).access_token}")
    assert c.get("/api/v1/fee-preference/").json() == {"pay_fees_in_kk99": False, "discount": "0.25", "token": "KK99"}
    r = c.put("/api/v1/fee-preference/", {"pay_fees_in_kk99": True}, format="json")
    assert r.status_code == 200 and r.json()["pay_fees_in_kk99"] is True
    assert c.get("/api/v1/fee-preference/").json()["pay_fees_in_kk99"] is True
    assert c.put("/api/v1/fee-preference/", {}, format="json").status_code == 400
    assert APIClient().get("/api/v1/fee-preference/").status_code == 401
