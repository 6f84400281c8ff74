"""Adjustment approvals racing on PostgreSQL (threads, one connection each): the rolling
24-hour cap of an asset holds when two approvals arrive at once, and one request applies once."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from accounts.roles import roles_sync
from wallets.audit import ledger_audit_run
from wallets.errors import AdjustmentCapExceeded, AdjustmentStateInvalid
from wallets.models import AdjustmentRequest, AdjustmentStatus, Asset, JournalEvent
from wallets.selectors import balance_get
from wallets.services import adjustment_approve, adjustment_request

from .test_concurrency_postgres import run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

D = Decimal
STAFF = ["finance@kk99.local", "staff@kk99.local", "admin@kk99.local"]


@pytest.fixture
def setup(settings, django_user_model):
    settings.KK99 = {
        **settings.KK99,
        "STAFF_EMAILS": STAFF,
        "ADJUSTMENT_CAPS": {"USDT": {"per_adjustment": D("1000"), "daily": D("1500")}},
    }
    roles_sync()
    members = []
    for email in STAFF:
        member = django_user_model.objects.create_user(email=email, password="unused-password-1", is_staff=True)
        member.groups.add(Group.objects.get(name="finance"))
        members.append(django_user_model.objects.get(pk=member.pk))
    user = django_user_model.objects.create_user(email="customer@example.com", password="unused-password-1")
    usdt = Asset.objects.create(symbol="USDT", name="Tether", precision=2)
    return members, user, usdt


def test_two_concurrent_approvals_cannot_both_fit_under_the_daily_cap(setup, monkeypatch):
    """Deterministic interleaving: each approval, right after reading the 24-hour sum, waits
    (bounded) for the other to read it too. With the per-asset lock the second cannot read
    until the first commits, so the wait runs out and the sums are read one after the other;
    without it both read 0 and both would apply."""
    from wallets import services

    (requester, approver_a, approver_b), user, usdt = setup
    real_sum = services._adjusted_last_24h
    both_read = threading.Barrier(2)

    def sum_then_wait(asset):
        used = real_sum(asset)
        try:
            both_read.wait(timeout=3)
        except threading.BrokenBarrierError:
            pass
        return used

    monkeypatch.setattr(services, "_adjusted_last_24h", sum_then_wait)
    first = adjustment_request(staff=requester, user=user, asset=usdt, amount=D("900"), reason="r1")
    second = adjustment_request(staff=requester, user=user, asset=usdt, amount=D("900"), reason="r2")

    results = run_in_threads(
        [
            lambda: adjustment_approve(adjustment_id=first.pk, staff=approver_a),
            lambda: adjustment_approve(adjustment_id=second.pk, staff=approver_b),
        ]
    )

    assert sorted(type(r).__name__ for r in results) == ["AdjustmentCapExceeded", "AdjustmentRequest"], results
    assert any(isinstance(r, AdjustmentCapExceeded) for r in results)
    assert balance_get(user=user, asset=usdt).available == D("900")
    assert AdjustmentRequest.objects.filter(status=AdjustmentStatus.APPROVED).count() == 1
    assert ledger_audit_run().ok


def test_one_request_approved_by_two_staff_at_once_applies_once(setup):
    (requester, approver_a, approver_b), user, usdt = setup
    adjustment = adjustment_request(staff=requester, user=user, asset=usdt, amount=D("100"), reason="r")

    results = run_in_threads(
        [
            lambda: adjustment_approve(adjustment_id=adjustment.pk, staff=approver_a),
            lambda: adjustment_approve(adjustment_id=adjustment.pk, staff=approver_b),
        ]
    )

    assert sum(isinstance(r, AdjustmentRequest) for r in results) == 1
    assert sum(isinstance(r, AdjustmentStateInvalid) for r in results) == 1, results
    assert JournalEvent.objects.filter(kind="adjustment").count() == 1
    assert balance_get(user=user, asset=usdt).available == D("100")
