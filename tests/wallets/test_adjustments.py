"""Staff balance adjustments take two people: one requests, a different one approves, and only
the approval posts the journal event (keyed by the request). Never on the requester's or the
approver's own account; per-adjustment and rolling-24-hour caps per asset. The rules hold in
the service, the ``ledger_adjust`` command, the admin and the database itself."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.audit import AuditAction, AuditLog
from accounts.roles import ROLE_PERMISSIONS, roles_sync
from wallets.audit import ledger_audit_run
from wallets.errors import (
    AdjustmentCapExceeded,
    AdjustmentNotAllowed,
    AdjustmentStateInvalid,
    InsufficientFunds,
    InvalidPosting,
    WalletsErrorCode,
)
from wallets.models import AdjustmentRequest, AdjustmentStatus, Asset, JournalEvent
from wallets.selectors import balance_get, system_balance
from wallets.services import adjustment_approve, adjustment_reject, adjustment_request

pytestmark = pytest.mark.django_db

D = Decimal
CAPS = {"USDT": {"per_adjustment": D("1000"), "daily": D("1500")}, "BTC": {"per_adjustment": D("1"), "daily": D("2")}}


@pytest.fixture(autouse=True)
def _caps(settings):
    staff = ["finance", "staff", "admin", "compliance", "treasury", "support", "f2", "f3", "t2"]
    settings.KK99 = {**settings.KK99, "ADJUSTMENT_CAPS": CAPS, "STAFF_EMAILS": [f"{name}@kk99.local" for name in staff]}


@pytest.fixture
def role_member(make_user):
    roles_sync()

    def make(email: str, role: str):
        user = make_user(email, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        return type(user).objects.get(pk=user.pk)  # fresh permission cache

    return make


@pytest.fixture
def requester(role_member):
    return role_member("finance@kk99.local", "finance")


@pytest.fixture
def approver(role_member):
    return role_member("staff@kk99.local", "finance")


def assert_clean():
    report = ledger_audit_run()
    assert report.ok, report


def ask(staff, user, asset, amount, reason="ticket 12", **kw):
    return adjustment_request(staff=staff, user=user, asset=asset, amount=D(str(amount)), reason=reason, **kw)


# --- the two-person rule ---------------------------------------------------------------------------


def test_a_request_moves_nothing_until_a_second_staff_member_approves(requester, approver, alice, usdt):
    adjustment = ask(requester, alice, usdt, "100")

    assert adjustment.status == AdjustmentStatus.PENDING
    assert balance_get(user=alice, asset=usdt).available == 0
    assert not JournalEvent.objects.filter(kind="adjustment").exists()

    adjustment_approve(adjustment_id=adjustment.pk, staff=approver)

    adjustment.refresh_from_db()
    assert adjustment.status == AdjustmentStatus.APPROVED and adjustment.decided_by == approver
    assert balance_get(user=alice, asset=usdt).available == D(100)
    assert system_balance(kind="adjustments", asset=usdt).available == D(-100)
    event = adjustment.journal_event
    assert event.kind == "adjustment" and event.idempotency_key == f"adjustment:{adjustment.pk}" and event.actor == approver
    audit = AuditLog.objects.get(action=AuditAction.BALANCE_ADJUSTED)
    assert audit.actor == approver and audit.details["requested_by"] == requester.pk and audit.details["event_id"] == event.pk
    assert AuditLog.objects.filter(action="balance_adjustment_requested", actor=requester).exists()
    assert_clean()


def test_the_requester_cannot_approve_their_own_request(requester, alice, usdt):
    adjustment = ask(requester, alice, usdt, "100")
    with pytest.raises(AdjustmentNotAllowed, match="two-person"):
        adjustment_approve(adjustment_id=adjustment.pk, staff=requester)
    assert balance_get(user=alice, asset=usdt).available == 0
    assert AdjustmentRequest.objects.get().status == AdjustmentStatus.PENDING


def test_nobody_requests_an_adjustment_of_their_own_balance(requester, usdt):
    with pytest.raises(AdjustmentNotAllowed, match="own balance"):
        ask(requester, requester, usdt, "1")
    assert not AdjustmentRequest.objects.exists()


def test_nobody_approves_an_adjustment_of_their_own_balance(requester, approver, usdt):
    adjustment = ask(requester, approver, usdt, "1")
    with pytest.raises(AdjustmentNotAllowed, match="own balance"):
        adjustment_approve(adjustment_id=adjustment.pk, staff=approver)
    assert balance_get(user=approver, asset=usdt).available == 0


def test_an_approved_request_cannot_apply_twice(requester, approver, role_member, alice, usdt):
    third = role_member("admin@kk99.local", "finance")
    adjustment = ask(requester, alice, usdt, "10")
    adjustment_approve(adjustment_id=adjustment.pk, staff=approver)
    for who in (approver, third):
        with pytest.raises(AdjustmentStateInvalid):
            adjustment_approve(adjustment_id=adjustment.pk, staff=who)
    assert balance_get(user=alice, asset=usdt).available == D(10)
    assert JournalEvent.objects.filter(kind="adjustment").count() == 1


def test_a_rejected_request_posts_nothing_and_cannot_be_approved_later(requester, approver, role_member, alice, usdt):
    adjustment = ask(requester, alice, usdt, "10")
    adjustment_reject(adjustment_id=adjustment.pk, staff=approver, reason="no ticket")
    with pytest.raises(AdjustmentStateInvalid):
        adjustment_approve(adjustment_id=adjustment.pk, staff=role_member("admin@kk99.local", "finance"))
    adjustment.refresh_from_db()
    assert adjustment.status == AdjustmentStatus.REJECTED and adjustment.decision_note == "no ticket"
    assert not JournalEvent.objects.filter(kind="adjustment").exists()


def test_staff_without_the_permissions_can_neither_request_nor_approve(make_user, role_member, requester, alice, usdt):
    support = role_member("compliance@kk99.local", "support")
    customer = make_user()
    for who in (support, customer):
        with pytest.raises(AdjustmentNotAllowed):
            ask(who, alice, usdt, "1")
    adjustment = ask(requester, alice, usdt, "1")
    treasury = role_member("treasury@kk99.local", "treasury")
    for who in (support, customer, treasury):
        with pytest.raises(AdjustmentNotAllowed):
            adjustment_approve(adjustment_id=adjustment.pk, staff=who)
    assert not JournalEvent.objects.filter(kind="adjustment").exists()


def test_kk99_is_never_adjusted_its_supply_has_its_own_two_person_request(requester, alice):
    kk99 = Asset.objects.create(symbol="KK99", name="KK99", precision=8)
    with pytest.raises(AdjustmentNotAllowed, match="token supply"):
        ask(requester, alice, kk99, "1")


def test_a_debit_beyond_the_available_balance_is_refused_at_approval_and_stays_pending(requester, approver, alice, usdt):
    adjustment = ask(requester, alice, usdt, "-5")
    with pytest.raises(InsufficientFunds):
        adjustment_approve(adjustment_id=adjustment.pk, staff=approver)
    adjustment.refresh_from_db()
    assert adjustment.status == AdjustmentStatus.PENDING
    assert not AuditLog.objects.filter(action=AuditAction.BALANCE_ADJUSTED).exists()
    assert_clean()


def test_a_request_needs_a_reason_and_a_valid_amount(requester, alice, usdt):
    with pytest.raises(InvalidPosting):
        ask(requester, alice, usdt, "1", reason="  ")
    with pytest.raises(Exception) as err:
        ask(requester, alice, usdt, "1.001")
    assert getattr(err.value, "code", "") == WalletsErrorCode.PRECISION_EXCEEDED
    assert not AdjustmentRequest.objects.exists()


def test_the_same_request_key_twice_creates_one_request(requester, alice, usdt):
    first = ask(requester, alice, usdt, "5", request_key="form:1")
    again = ask(requester, alice, usdt, "5", request_key="form:1")
    assert first.pk == again.pk and AdjustmentRequest.objects.count() == 1
    with pytest.raises(InvalidPosting):
        ask(requester, alice, usdt, "6", request_key="form:1")


# --- caps -------------------------------------------------------------------------------------------


def test_one_adjustment_above_the_asset_cap_is_refused(requester, alice, usdt, btc):
    with pytest.raises(AdjustmentCapExceeded):
        ask(requester, alice, usdt, "1000.01")
    with pytest.raises(AdjustmentCapExceeded):
        ask(requester, alice, btc, "-1.00000001")
    ask(requester, alice, usdt, "1000")  # at the cap is fine


def test_an_asset_without_configured_caps_cannot_be_adjusted(requester, alice):
    doge = Asset.objects.create(symbol="DOGE", name="Doge", precision=8)
    with pytest.raises(AdjustmentNotAllowed, match="No adjustment caps"):
        ask(requester, alice, doge, "1")


def test_split_adjustments_hit_the_rolling_24_hour_cap_credits_and_debits_alike(requester, approver, alice, bob, usdt):
    first = ask(requester, alice, usdt, "900")
    second = ask(requester, alice, usdt, "-500")
    third = ask(requester, bob, usdt, "200")
    adjustment_approve(adjustment_id=first.pk, staff=approver)
    adjustment_approve(adjustment_id=second.pk, staff=approver)  # |900| + |-500| = 1400 ≤ 1500
    with pytest.raises(AdjustmentCapExceeded) as err:
        adjustment_approve(adjustment_id=third.pk, staff=approver)  # 1600 > 1500
    assert err.value.details["used"] == "1400.00"
    assert balance_get(user=bob, asset=usdt).available == 0


def test_the_daily_cap_frees_up_after_24_hours(requester, approver, alice, usdt):
    first = ask(requester, alice, usdt, "1000")
    adjustment_approve(adjustment_id=first.pk, staff=approver)
    AdjustmentRequest.objects.filter(pk=first.pk).update(decided_at=timezone.now() - timedelta(hours=24, seconds=1))
    second = ask(requester, alice, usdt, "1000")
    adjustment_approve(adjustment_id=second.pk, staff=approver)
    assert balance_get(user=alice, asset=usdt).available == D(2000)


# --- the database enforces the rule, whatever the code does ----------------------------------------


def test_the_database_refuses_an_approval_by_the_requester(requester, alice, usdt):
    adjustment = ask(requester, alice, usdt, "1")
    with pytest.raises(IntegrityError), transaction.atomic():
        AdjustmentRequest.objects.filter(pk=adjustment.pk).update(decided_by=requester, status="rejected", decided_at=timezone.now())


def test_the_database_refuses_a_request_on_the_requesters_own_account(requester, usdt):
    with pytest.raises(IntegrityError), transaction.atomic():
        AdjustmentRequest.objects.create(user=requester, asset=usdt, amount=1, reason="r", requested_by=requester, request_key="k")


def test_the_database_refuses_an_approval_by_the_adjusted_user(requester, approver, usdt):
    adjustment = ask(requester, approver, usdt, "1")
    with pytest.raises(IntegrityError), transaction.atomic():
        AdjustmentRequest.objects.filter(pk=adjustment.pk).update(decided_by=approver, status="rejected", decided_at=timezone.now())


def test_the_database_refuses_an_approved_request_without_its_journal_event(requester, approver, alice, usdt):
    adjustment = ask(requester, alice, usdt, "1")
    with pytest.raises(IntegrityError), transaction.atomic():
        AdjustmentRequest.objects.filter(pk=adjustment.pk).update(decided_by=approver, status="approved", decided_at=timezone.now())


def test_ledger_audit_fails_on_an_adjustment_event_written_around_the_two_person_rule(alice, usdt):
    from wallets.services import Leg, ledger_settle

    assert_clean()
    ledger_settle(
        idempotency_key="sneaky", kind="adjustment", legs=[Leg(alice, usdt, "available", 5), Leg("adjustments", usdt, "available", -5)]
    )
    report = ledger_audit_run()
    assert not report.ok
    assert any("no approved two-person request" in p for p in report.totals_problems)


# --- roles -------------------------------------------------------------------------------------------


def test_adjusting_and_approving_withdrawals_belong_to_different_roles(role_member):
    for role in ROLE_PERMISSIONS:
        if role == "admin":
            continue
        member = role_member(f"{role}@kk99.local", role)
        assert not (member.has_perm("wallets.adjust_balance") and member.has_perm("chains.approve_withdrawal")), role
    assert role_member("f2@kk99.local", "finance").has_perm("wallets.adjust_balance")
    assert role_member("t2@kk99.local", "treasury").has_perm("chains.approve_withdrawal")
    assert not role_member("f3@kk99.local", "finance").has_perm("chains.approve_withdrawal")


# --- the ledger_adjust command -------------------------------------------------------------------------


def test_ledger_adjust_command_requests_and_a_second_person_approves(requester, approver, alice, usdt, capsys):
    call_command("ledger_adjust", staff=requester.email, email="ALICE@example.com", asset="usdt", amount="250.5", reason="ticket 9")
    adjustment = AdjustmentRequest.objects.get()
    assert f"Requested adjustment #{adjustment.pk}" in capsys.readouterr().out
    assert balance_get(user=alice, asset=usdt).available == 0

    with pytest.raises(CommandError, match="adjustment_not_allowed"):
        call_command("ledger_adjust", staff=requester.email, approve=adjustment.pk)
    call_command("ledger_adjust", staff=approver.email, approve=adjustment.pk)

    assert balance_get(user=alice, asset=usdt).available == D("250.50")
    assert f"Approved adjustment #{adjustment.pk}" in capsys.readouterr().out


def test_ledger_adjust_command_has_no_single_operator_mode(alice, usdt):
    with pytest.raises(CommandError, match="--staff is required"):
        call_command("ledger_adjust", email=alice.email, asset="USDT", amount="1", reason="r")
    assert not AdjustmentRequest.objects.exists() and not JournalEvent.objects.filter(kind="adjustment").exists()


def test_ledger_adjust_command_rejects_and_lists(requester, approver, alice, usdt, capsys):
    call_command("ledger_adjust", staff=requester.email, email=alice.email, asset="USDT", amount="3", reason="r")
    adjustment = AdjustmentRequest.objects.get()
    call_command("ledger_adjust", list=True)
    assert f"#{adjustment.pk} {alice.email} USDT +3.00" in capsys.readouterr().out
    call_command("ledger_adjust", staff=approver.email, reject=adjustment.pk, reason="dup")
    assert AdjustmentRequest.objects.get().status == AdjustmentStatus.REJECTED


def test_ledger_adjust_command_refuses_unknown_user_asset_and_bad_amount(requester, alice, usdt):
    with pytest.raises(CommandError, match="No user"):
        call_command("ledger_adjust", staff=requester.email, email="nobody@example.com", asset="USDT", amount="1", reason="r")
    with pytest.raises(CommandError, match="No asset"):
        call_command("ledger_adjust", staff=requester.email, email=alice.email, asset="DOGE", amount="1", reason="r")
    with pytest.raises(CommandError, match="precision_exceeded"):
        call_command("ledger_adjust", staff=requester.email, email=alice.email, asset="USDT", amount="1.001", reason="r")
    with pytest.raises(CommandError, match="adjustment_cap_exceeded"):
        call_command("ledger_adjust", staff=requester.email, email=alice.email, asset="USDT", amount="5000", reason="r")
    assert not AdjustmentRequest.objects.exists()


# --- the admin -------------------------------------------------------------------------------------------


def test_admin_adjust_page_only_requests_and_the_approve_action_of_another_staff_member_applies(
    client, requester, approver, alice, usdt, fund
):
    fund(alice, usdt, "100")
    client.force_login(requester)
    url = reverse("admin:wallets_balance_adjust")
    key = client.get(url, {"email": alice.email, "asset": "USDT"}).context["form"].initial["idempotency_key"]
    data = {"email": alice.email, "asset": "USDT", "amount": "-25.50", "reason": "chargeback 77", "idempotency_key": key}
    assert client.post(url, data).status_code == 302
    assert client.post(url, data).status_code == 302  # double submit: still one request
    adjustment = AdjustmentRequest.objects.get()
    assert balance_get(user=alice, asset=usdt).available == D(100)

    changelist = reverse("admin:wallets_adjustmentrequest_changelist")
    client.post(changelist, {"action": "approve_selected", "_selected_action": [adjustment.pk]})  # own request
    assert balance_get(user=alice, asset=usdt).available == D(100)

    client.force_login(approver)
    response = client.post(changelist, {"action": "approve_selected", "_selected_action": [adjustment.pk]})
    assert response.status_code == 302
    assert balance_get(user=alice, asset=usdt).available == D("74.50")
    adjustment.refresh_from_db()
    assert adjustment.status == AdjustmentStatus.APPROVED and adjustment.decided_by == approver


def test_admin_finance_cannot_credit_themselves(client, requester, usdt):
    """The reported finding: finance credited itself +1 USDT in the admin."""
    client.force_login(requester)
    url = reverse("admin:wallets_balance_adjust")
    response = client.post(url, {"email": requester.email, "asset": "USDT", "amount": "1", "reason": "me", "idempotency_key": "k"})
    assert response.status_code == 200 and "own balance" in response.content.decode()
    assert not AdjustmentRequest.objects.exists()
    assert balance_get(user=requester, asset=usdt).available == 0


def test_staff_without_adjust_permission_cannot_open_or_post_the_adjust_page(client, role_member, alice, usdt):
    support = role_member("compliance@kk99.local", "support")
    client.force_login(support)
    url = reverse("admin:wallets_balance_adjust")
    assert client.get(url).status_code == 403
    response = client.post(url, {"email": alice.email, "asset": "USDT", "amount": "5", "reason": "x", "idempotency_key": "k"})
    assert response.status_code == 403
    assert not AdjustmentRequest.objects.exists()
