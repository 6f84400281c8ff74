"""The kill switch: staff (admin) for an account or a market, the account's own API, every
engagement audited, cancel-only / reduce-only enforced by the pre-trade hook."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.audit import AuditAction, AuditLog
from kk99.errors import KK99Error
from risk import killswitch
from risk.errors import RiskErrorCode
from risk.models import KillSwitch
from tests.api.factories import make_market, run_engine
from trading.models import Order
from trading.services import order_place

pytestmark = pytest.mark.django_db

BUY = {"market": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100"}
SELL = {**BUY, "side": "SELL", "price": "150"}


def _v1(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser(email="staff@kk99.local", password="pw-staff-123456")


def _open(user) -> list[Order]:
    return list(Order.objects.filter(user=user, status__in=Order.OPEN_STATUSES, cancel_requested=False))


def test_an_account_kill_switch_cancels_all_its_orders_and_refuses_new_ones(alice, bob, market, staff):
    user = alice[0]
    make_market("ETHUSDT")
    order_place(user=user, **BUY)
    order_place(user=user, **{**BUY, "market": "ETHUSDT"})
    other = order_place(user=bob[0], **BUY)
    switch = killswitch.kill_switch_engage(actor=staff, mode=KillSwitch.Mode.CANCEL_ONLY, user=user, reason="runaway algo")
    assert switch.cancelled_orders == 2 and _open(user) == []
    assert Order.objects.get(pk=other.pk).cancel_requested is False  # another account is untouched
    with pytest.raises(KK99Error) as info:
        order_place(user=user, **SELL)
    assert info.value.code == RiskErrorCode.KILL_SWITCH and info.value.status == 403
    log = AuditLog.objects.get(action=AuditAction.RISK_KILL_SWITCH_ENGAGED)
    assert log.actor == staff and log.target_user == user and log.details["mode"] == "CANCEL_ONLY"
    run_engine("BTCUSDT")
    assert Order.objects.filter(user=user, market__symbol="BTCUSDT").get().status == Order.Status.CANCELED


def test_reduce_only_accepts_sells_and_refuses_buys(alice, market, staff):
    killswitch.kill_switch_engage(actor=staff, mode=KillSwitch.Mode.REDUCE_ONLY, user=alice[0], cancel_all=False)
    with pytest.raises(KK99Error) as info:
        order_place(user=alice[0], **BUY)
    assert info.value.code == RiskErrorCode.REDUCE_ONLY
    assert order_place(user=alice[0], **SELL).side == "SELL"


def test_a_market_kill_switch_applies_to_every_account_on_that_market_only(alice, bob, market, staff):
    make_market("ETHUSDT")
    order_place(user=alice[0], **BUY)
    order_place(user=bob[0], **BUY)
    eth = order_place(user=bob[0], **{**BUY, "market": "ETHUSDT"})
    switch = killswitch.kill_switch_engage(actor=staff, mode=KillSwitch.Mode.CANCEL_ONLY, market=market)
    assert switch.cancelled_orders == 2
    assert Order.objects.get(pk=eth.pk).cancel_requested is False
    for user in (alice[0], bob[0]):
        with pytest.raises(KK99Error):
            order_place(user=user, **BUY)
    assert order_place(user=alice[0], **{**BUY, "market": "ETHUSDT"})


def test_releasing_restores_trading_and_is_audited_once(alice, market, staff):
    switch = killswitch.kill_switch_engage(actor=staff, mode=KillSwitch.Mode.CANCEL_ONLY, user=alice[0])
    killswitch.kill_switch_release(actor=staff, switch=switch)
    killswitch.kill_switch_release(actor=staff, switch=switch)
    assert order_place(user=alice[0], **BUY)
    assert AuditLog.objects.filter(action=AuditAction.RISK_KILL_SWITCH_RELEASED).count() == 1


def test_engaging_twice_changes_the_mode_of_the_one_active_switch(alice, market, staff):
    killswitch.kill_switch_engage(actor=staff, mode=KillSwitch.Mode.CANCEL_ONLY, user=alice[0])
    killswitch.kill_switch_engage(actor=staff, mode=KillSwitch.Mode.REDUCE_ONLY, user=alice[0])
    (switch,) = KillSwitch.objects.filter(released_at__isnull=True)
    assert switch.mode == KillSwitch.Mode.REDUCE_ONLY


# --- the account's own API --------------------------------------------------------------------


def test_the_accounts_own_api_cancels_everything_in_one_call(alice, market):
    user = alice[0]
    make_market("ETHUSDT")
    order_place(user=user, **BUY)
    order_place(user=user, **{**BUY, "market": "ETHUSDT"})
    response = _v1(user).post("/api/v1/risk/kill-switch", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"cancelled_orders": 2, "kill_switch": None}
    assert _open(user) == []
    assert order_place(user=user, **BUY)  # without engage, trading goes on


def test_the_account_can_engage_and_release_its_own_switch_but_not_a_staff_one(alice, market, staff):
    client = _v1(alice[0])
    body = client.post("/api/v1/risk/kill-switch", {"engage": "CANCEL_ONLY"}, format="json").json()
    assert body["kill_switch"]["mode"] == "CANCEL_ONLY" and body["kill_switch"]["by_self"] is True
    assert client.post("/api/v1/orders/", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "100"}, format="json").json()["error"]["code"] == "risk_kill_switch"
    assert client.delete("/api/v1/risk/kill-switch").json() == {"released": True}
    killswitch.kill_switch_engage(actor=staff, mode=KillSwitch.Mode.CANCEL_ONLY, user=alice[0])
    refused = client.delete("/api/v1/risk/kill-switch")
    assert refused.status_code == 403
    assert KillSwitch.objects.filter(released_at__isnull=True).count() == 1


def test_a_bad_kill_switch_mode_is_a_400_and_changes_nothing(alice, market):
    order_place(user=alice[0], **BUY)
    response = _v1(alice[0]).post("/api/v1/risk/kill-switch", {"engage": "EVERYTHING"}, format="json")
    assert response.status_code == 400
    assert len(_open(alice[0])) == 1 and not KillSwitch.objects.exists()


# --- admin ----------------------------------------------------------------------------------------


def test_staff_engage_a_market_kill_switch_in_the_admin_and_release_it_with_an_action(client, alice, market, staff):
    order_place(user=alice[0], **BUY)
    client.force_login(staff)
    response = client.post("/admin/risk/killswitch/add/", {"market": market.pk, "mode": "CANCEL_ONLY", "reason": "bad feed", "cancel_all": "on"})
    assert response.status_code == 302, response.content
    switch = KillSwitch.objects.get()
    assert switch.market == market and switch.engaged_by == staff and switch.cancelled_orders == 1
    assert AuditLog.objects.filter(action=AuditAction.RISK_KILL_SWITCH_ENGAGED, actor=staff).exists()
    client.post("/admin/risk/killswitch/", {"action": "release", "_selected_action": [switch.pk]})
    switch.refresh_from_db()
    assert switch.released_by == staff


def test_the_admin_refuses_a_switch_with_both_or_no_scope(client, alice, market, staff):
    client.force_login(staff)
    response = client.post("/admin/risk/killswitch/add/", {"mode": "CANCEL_ONLY"})
    assert response.status_code == 200 and not KillSwitch.objects.exists()


def test_the_risk_dashboard_renders_for_staff(client, alice, market, staff):
    killswitch.kill_switch_engage(actor=staff, mode=KillSwitch.Mode.CANCEL_ONLY, market=market, cancel_all=False)
    client.force_login(staff)
    response = client.get("/admin/risk/riskfigure/dashboard/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "Risk dashboard" in text and "BTCUSDT" in text and "cancel_only" in text
    assert client.get("/admin/risk/riskfigure/").status_code == 200


def test_the_limits_admin_refuses_a_row_without_scope_or_a_second_row_for_a_scope(client, alice, market, staff):
    from risk.models import RiskLimit

    client.force_login(staff)
    response = client.post("/admin/risk/risklimit/add/", {"max_open_orders": "5"})
    assert response.status_code == 200 and "Choose an account, a market, or both." in response.content.decode()
    assert client.post("/admin/risk/risklimit/add/", {"market": market.pk, "price_collar_pct": "5"}).status_code == 302
    again = client.post("/admin/risk/risklimit/add/", {"market": market.pk, "price_collar_pct": "7"})
    assert again.status_code == 200 and "already has limits for every account" in again.content.decode()
    assert RiskLimit.objects.get().price_collar_pct == 5
