"""Alerts, cases and thresholds: recorded once, worked through the workflow with an audit trail."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.audit import AuditLog
from accounts.roles import roles_sync
from surveillance import detectors as d
from surveillance.errors import SurveillanceError
from surveillance.models import Alert, Case, DetectorThreshold
from surveillance.selectors import threshold_params
from surveillance.services import (
    alert_record,
    case_freeze_accounts,
    case_transition,
    detectors_run,
    threshold_set,
)
from tests.fixtures import place

pytestmark = pytest.mark.django_db


# One clock reading for the module: two findings built a second apart must still be "the same".
_NOW = timezone.now().replace(microsecond=0)


def _finding(accounts, minutes=0):
    start = _NOW - timedelta(hours=1, minutes=minutes)
    return d.Finding("wash", tuple(accounts), start, start + timedelta(hours=1), 2.0, {"kind": "self", "trade_ids": [], "order_ids": []}, start)


def _staff(settings, make_user, email, role):
    roles_sync()
    settings.KK99 = {**settings.KK99, "STAFF_EMAILS": [*settings.KK99["STAFF_EMAILS"], email]}
    user = make_user(email=email, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def officer(settings, make_user):
    return _staff(settings, make_user, "officer@kk99.local", "compliance")


def test_the_same_finding_is_recorded_once_and_joins_the_open_case_of_its_accounts(market, alice, bob):
    first = alert_record(market=market, finding=_finding([alice.pk]))
    assert alert_record(market=market, finding=_finding([alice.pk])) is None
    second = alert_record(market=market, finding=_finding([alice.pk, bob.pk], minutes=5))
    other = alert_record(market=market, finding=_finding([bob.pk + 1000], minutes=9))
    assert Alert.objects.count() == 3
    assert first.case_id == second.case_id != other.case_id


def test_workflow_moves_only_along_its_transitions_with_reasons_and_audit(market, alice, officer):
    case = alert_record(market=market, finding=_finding([alice.pk])).case
    with pytest.raises(SurveillanceError):
        case_transition(case=case, to_state=Case.State.CONFIRMED, actor=officer, reason="x")  # open -> confirmed is not allowed
    case = case_transition(case=case, to_state=Case.State.ASSIGNED, actor=officer)
    assert case.assignee == officer
    with pytest.raises(SurveillanceError):
        case_transition(case=case, to_state=Case.State.CONFIRMED, actor=officer, reason="  ")
    case = case_transition(case=case, to_state=Case.State.CONFIRMED, actor=officer, reason="self trades on purpose")
    assert [e.to_state for e in case.events.all()] == ["open", "assigned", "confirmed"]
    assert AuditLog.objects.filter(action="surveillance_case", target=f"case:{case.pk}").count() == 2
    with pytest.raises(SurveillanceError):
        case_transition(case=case, to_state=Case.State.DISMISSED, actor=officer, reason="late")


def test_freeze_only_from_a_confirmed_case_and_audited(market, alice, officer):
    case = alert_record(market=market, finding=_finding([alice.pk])).case
    with pytest.raises(SurveillanceError):
        case_freeze_accounts(case=case, actor=officer)
    alice.refresh_from_db()
    assert not alice.is_frozen
    case_transition(case=case, to_state=Case.State.ASSIGNED, actor=officer)
    case_transition(case=case, to_state=Case.State.CONFIRMED, actor=officer, reason="confirmed")
    assert case_freeze_accounts(case=case, actor=officer, reason="wash") == [alice.pk]
    alice.refresh_from_db()
    assert alice.is_frozen
    assert AuditLog.objects.filter(action="account_frozen", target_user=alice).exists()


def test_thresholds_per_market_override_global_and_keep_history(market, officer):
    threshold_set(detector="pump", market=None, params={"z_return": 10}, actor=officer, reason="global")
    threshold_set(detector="pump", market=market, params={"z_return": 12}, actor=officer, reason="thin market")
    threshold_set(detector="pump", market=market, params={"z_volume": 6}, actor=officer)
    assert threshold_params(detector="pump", market_id=market.pk)["z_return"] == 12
    assert threshold_params(detector="pump", market_id=market.pk)["z_volume"] == 6
    assert threshold_params(detector="pump", market_id=market.pk + 1)["z_return"] == 10
    row = DetectorThreshold.objects.get(detector="pump", market=market)
    assert [h.new_params for h in row.history.order_by("id")] == [{"z_return": 12.0}, {"z_return": 12.0, "z_volume": 6.0}]
    for bad in ({"nope": 1}, {"z_return": -1}, {"z_return": "x"}, {"z_return": float("nan")}):
        with pytest.raises(SurveillanceError):
            threshold_set(detector="pump", market=market, params=bad, actor=officer)
    assert DetectorThreshold.objects.get(detector="pump", market=market).params == {"z_return": 12.0, "z_volume": 6.0}


def test_detectors_run_finds_a_self_trade_through_the_real_engine_once(market, alice, engine):
    place(alice, market, "SELL", price="100", quantity="1")
    place(alice, market, "BUY", price="100", quantity="1")
    engine.run_until_idle()
    alerts = detectors_run(market=market)
    assert [(a.detector, a.accounts) for a in alerts] == [("wash", [alice.pk])]
    assert alerts[0].evidence["book"]["at"]
    assert detectors_run(market=market) == []  # nothing new: no double alert


def test_compliance_works_a_case_in_the_admin_and_exports_it(client, market, alice, officer, engine):
    place(alice, market, "SELL", price="100", quantity="1")
    place(alice, market, "BUY", price="100", quantity="1")
    engine.run_until_idle()
    alert = detectors_run(market=market)[0]
    client.force_login(officer)
    assert client.get("/admin/surveillance/case/?state__exact=open").status_code == 200
    page = client.get(f"/admin/surveillance/alert/{alert.pk}/change/")
    assert page.status_code == 200 and b"<polyline" in page.content and b"evidence-trades" in page.content
    case = alert.case
    assert client.get(f"/admin/surveillance/case/{case.pk}/change/").status_code == 200
    client.post(f"/admin/surveillance/case/{case.pk}/transition/", {"to_state": "assigned"})
    client.post(f"/admin/surveillance/case/{case.pk}/transition/", {"to_state": "confirmed", "reason": "obvious"})
    case.refresh_from_db()
    assert case.state == "confirmed"
    client.post(f"/admin/surveillance/case/{case.pk}/freeze/", {"reason": "wash"})
    alice.refresh_from_db()
    assert alice.is_frozen
    body = json.loads(client.get(f"/admin/surveillance/case/{case.pk}/export.json").content)
    assert body["alerts"][0]["alert_key"] == alert.alert_key and [e["to"] for e in body["events"]] == ["open", "assigned", "confirmed", "confirmed"]
    csv_text = client.get(f"/admin/surveillance/case/{case.pk}/export.csv").content.decode()
    assert alert.alert_key in csv_text.splitlines()[1]


def test_support_staff_cannot_work_cases(client, settings, market, alice, make_user):
    support = _staff(settings, make_user, "support@kk99.local", "support")
    case = alert_record(market=market, finding=_finding([alice.pk])).case
    client.force_login(support)
    assert client.post(f"/admin/surveillance/case/{case.pk}/transition/", {"to_state": "assigned"}).status_code in (302, 403)
    case.refresh_from_db()
    assert case.state == "open"
    assert client.get(f"/admin/surveillance/case/{case.pk}/export.json").status_code in (302, 403)
