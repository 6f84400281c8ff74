"""The KK99 token: two-person issuance and burns, audit, and the supply report."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError

from accounts.audit import AuditLog
from wallets.chains.errors import ChainsError
from wallets.chains.models import TokenSupplyRequest, TokenSupplyStatus
from wallets.chains.token import token_asset, token_supply_approve, token_supply_problems, token_supply_reject, token_supply_report, token_supply_request
from wallets.services import ledger_transfer


def test_issuance_needs_a_second_staff_member(staff_members, alice):
    first, second = staff_members
    supply = token_supply_request(staff=first, kind="issue", amount="1000", holder=alice, reason="launch")
    with pytest.raises(ChainsError):
        token_supply_approve(request_id=supply.pk, staff=first)
    assert token_supply_report()["outstanding"] == 0
    token_supply_approve(request_id=supply.pk, staff=second)
    supply.refresh_from_db()
    assert supply.status == TokenSupplyStatus.APPROVED and supply.journal_event_id
    assert set(AuditLog.objects.filter(target=f"token_supply:{supply.pk}").values_list("action", flat=True)) == {"token_supply_requested", "token_supply_approved"}


def test_the_database_refuses_a_self_approved_request(staff_members, alice):
    first, _ = staff_members
    supply = token_supply_request(staff=first, kind="issue", amount="1", holder=alice, reason="x")
    with pytest.raises(IntegrityError):
        TokenSupplyRequest.objects.filter(pk=supply.pk).update(decided_by=first)


def test_only_authorised_staff_may_request(alice, make_user):
    with pytest.raises(ChainsError):
        token_supply_request(staff=make_user(), kind="issue", amount="1", holder=alice, reason="x")


def test_supply_report_issued_minus_burned_equals_all_balances(staff_members, alice, make_user):
    first, second = staff_members
    bob = make_user()
    issue = token_supply_request(staff=first, kind="issue", amount="1000", holder=alice, reason="launch")
    token_supply_approve(request_id=issue.pk, staff=second)
    ledger_transfer(from_user=alice, to_user=bob, asset=token_asset(), amount=Decimal("300"), idempotency_key="kk99-t1")
    burn = token_supply_request(staff=second, kind="burn", amount="100", holder=bob, reason="buyback")
    token_supply_approve(request_id=burn.pk, staff=first)
    rejected = token_supply_request(staff=first, kind="issue", amount="5", holder=alice, reason="typo")
    token_supply_reject(request_id=rejected.pk, staff=second, reason="no")
    report = token_supply_report()
    assert report["issued"] == Decimal("1000") and report["burned"] == Decimal("100")
    assert report["outstanding"] == report["balances_total"] == Decimal("900")
    assert report["issuance_account"] == Decimal("-900")
    assert report["ok"], report["problems"]
    assert token_supply_problems() == []


def test_supply_report_flags_tokens_created_outside_the_two_person_flow(staff_members, alice):
    from wallets.services import ledger_credit

    ledger_credit(user=alice, asset=token_asset(), amount=Decimal("5"), idempotency_key="rogue", kind="issuance", counter="issuance")
    report = token_supply_report()
    assert not report["ok"] and report["problems"]
    assert token_supply_problems()[0].startswith("KK99 supply: ")
