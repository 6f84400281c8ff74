"""The market-maker registry: two people, audited, read through one selector by the detectors."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import AuditAction, AuditLog
from surveillance.errors import SurveillanceError
from surveillance.errors import SurveillanceErrorCode as E
from surveillance.models import MarketMakerExemption
from surveillance.selectors import exempt_accounts
from surveillance.services import (
    detectors_run,
    mm_exemption_approve,
    mm_exemption_reject,
    mm_exemption_request,
    mm_exemption_revoke,
)
from tests.surveillance.test_cases import _staff
from tests.fixtures import place

pytestmark = pytest.mark.django_db


@pytest.fixture
def officers(make_user):
    return make_user(email="requester@kk99.local"), make_user(email="approver@kk99.local")


def _request(user, officers, markets=(), hours_ago=1, valid_hours=None):
    now = timezone.now()
    return mm_exemption_request(
        user=user, markets=list(markets), programme="Tier-1 liquidity", valid_from=now - timedelta(hours=hours_ago),
        valid_to=now + timedelta(hours=valid_hours) if valid_hours else None, requested_by=officers[0], reason="signed agreement #7",
    )


def test_an_exemption_counts_only_after_a_second_person_approves_it(market, alice, officers):
    exemption = _request(alice, officers, [market])
    assert exempt_accounts(market_id=market.pk, at=timezone.now()) == set()
    with pytest.raises(SurveillanceError) as same:
        mm_exemption_approve(exemption_id=exemption.pk, actor=officers[0])
    assert same.value.code == E.SAME_PERSON
    with pytest.raises(SurveillanceError) as own:
        mm_exemption_approve(exemption_id=exemption.pk, actor=alice)
    assert own.value.code == E.OWN_ACCOUNT
    assert exempt_accounts(market_id=market.pk, at=timezone.now()) == set()
    mm_exemption_approve(exemption_id=exemption.pk, actor=officers[1])
    assert exempt_accounts(market_id=market.pk, at=timezone.now()) == {alice.pk}
    with pytest.raises(SurveillanceError) as twice:
        mm_exemption_approve(exemption_id=exemption.pk, actor=officers[1])
    assert twice.value.code == E.NOT_PENDING


def test_the_database_refuses_one_person_approving_their_own_request(alice, officers):
    exemption = _request(alice, officers)
    with pytest.raises(IntegrityError), transaction.atomic():
        MarketMakerExemption.objects.filter(pk=exemption.pk).update(status="approved", approved_by=officers[0])
    with pytest.raises(IntegrityError), transaction.atomic():
        MarketMakerExemption.objects.filter(pk=exemption.pk).update(status="approved")  # approved without an approver


def test_staff_cannot_register_their_own_account(officers):
    with pytest.raises(SurveillanceError) as exc:
        _request(officers[0], officers)
    assert exc.value.code == E.OWN_ACCOUNT
    assert not MarketMakerExemption.objects.exists()


def test_exemption_applies_to_its_markets_and_validity_window_only(market, alice, bob, officers):
    scoped = _request(alice, officers, [market], valid_hours=2)
    everywhere = _request(bob, officers, [])
    for e in (scoped, everywhere):
        mm_exemption_approve(exemption_id=e.pk, actor=officers[1])
    now = timezone.now()
    assert exempt_accounts(market_id=market.pk, at=now) == {alice.pk, bob.pk}
    assert exempt_accounts(market_id=market.pk + 999, at=now) == {bob.pk}  # alice only on her market
    assert exempt_accounts(market_id=market.pk, at=now + timedelta(hours=3)) == {bob.pk}  # alice's registration has ended
    assert exempt_accounts(market_id=market.pk, at=now - timedelta(hours=2)) == set()  # before valid_from


def test_rejected_and_revoked_exemptions_exempt_nobody_and_every_step_is_audited(market, alice, bob, officers):
    rejected = _request(alice, officers, [market])
    with pytest.raises(SurveillanceError):
        mm_exemption_reject(exemption_id=rejected.pk, actor=officers[1], reason="  ")
    mm_exemption_reject(exemption_id=rejected.pk, actor=officers[1], reason="no agreement on file")
    revoked = _request(bob, officers, [market])
    mm_exemption_approve(exemption_id=revoked.pk, actor=officers[1])
    mm_exemption_revoke(exemption_id=revoked.pk, actor=officers[0], reason="agreement ended")
    with pytest.raises(SurveillanceError) as again:
        mm_exemption_revoke(exemption_id=revoked.pk, actor=officers[0], reason="again")
    assert again.value.code == E.NOT_APPROVED
    assert exempt_accounts(market_id=market.pk, at=timezone.now()) == set()
    steps = list(AuditLog.objects.filter(action=AuditAction.SURVEILLANCE_MM_EXEMPTION).order_by("pk").values_list("target_user_id", "actor_id", "details__step"))
    assert steps == [
        (alice.pk, officers[0].pk, "requested"), (alice.pk, officers[1].pk, "rejected"),
        (bob.pk, officers[0].pk, "requested"), (bob.pk, officers[1].pk, "approved"), (bob.pk, officers[0].pk, "revoked"),
    ]


def _round_trips(engine, market, a, b, n=2):
    for _ in range(n):
        place(b, market, "SELL", price="100", quantity="1")
        place(a, market, "BUY", price="100", quantity="1", time_in_force="IOC")
        engine.run_until_idle()
        place(a, market, "SELL", price="100", quantity="1")
        place(b, market, "BUY", price="100", quantity="1", time_in_force="IOC")
        engine.run_until_idle()


def test_round_trips_between_two_unregistered_accounts_are_flagged(market, alice, bob, officers, engine):
    _round_trips(engine, market, alice, bob)
    assert [(a.detector, a.evidence["kind"]) for a in detectors_run(market=market)] == [("wash", "round_trip")]


def test_detectors_read_the_registry_no_round_trip_alert_for_an_approved_maker(market, alice, bob, officers, engine):
    exemption = _request(bob, officers, [market])
    mm_exemption_approve(exemption_id=exemption.pk, actor=officers[1])
    _round_trips(engine, market, alice, bob)
    assert detectors_run(market=market) == []


def test_compliance_files_and_a_second_officer_approves_in_the_admin(client, settings, make_user, market, alice):
    first = _staff(settings, make_user, "first@kk99.local", "compliance")
    second = _staff(settings, make_user, "second@kk99.local", "compliance")
    client.force_login(first)
    now = timezone.now()
    page = client.post("/admin/surveillance/marketmakerexemption/add/", {
        "user": alice.pk, "markets": [market.pk], "programme": "Tier-1 liquidity",
        "valid_from_0": now.strftime("%Y-%m-%d"), "valid_from_1": "00:00:00", "reason": "agreement #7",
    })
    assert page.status_code == 302, page.content[:2000]
    exemption = MarketMakerExemption.objects.get()
    assert exemption.requested_by == first and exemption.status == "requested" and list(exemption.markets.all()) == [market]
    assert client.get("/admin/surveillance/marketmakerexemption/").status_code == 200
    changelist = "/admin/surveillance/marketmakerexemption/"
    client.post(changelist, {"action": "approve", "_selected_action": [exemption.pk]})
    exemption.refresh_from_db()
    assert exemption.status == "requested"  # the requester cannot approve
    client.force_login(second)
    client.post(changelist, {"action": "approve", "_selected_action": [exemption.pk]})
    exemption.refresh_from_db()
    assert exemption.status == "approved" and exemption.approved_by == second
