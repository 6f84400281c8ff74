"""Margin accounts, transfers, borrowing, repaying and interest against the real ledger."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from margin.audit import margin_audit_problems
from margin.errors import MarginError, MarginErrorCode
from margin.models import Loan, LoanEvent, LoanEventKind, MarginState
from margin.selectors import margin_state, max_borrowable, max_transferable, pool_available
from margin.services import (
    interest_accrue,
    interest_accrue_all,
    interest_capitalise,
    interest_for_hour,
    margin_account_for,
    margin_borrow,
    margin_repay,
    margin_transfer,
)
from tests.margin.conftest import HOUR0
from wallets.audit import ledger_audit_run
from wallets.models import Account, AccountPurpose, Balance, JournalEvent
from wallets.selectors import balance_get

pytestmark = pytest.mark.django_db(transaction=False)


def free(account: Account, asset) -> D:
    return Balance.objects.filter(account=account, asset=asset).values_list("available", flat=True).first() or D(0)


def audit_clean():
    report = ledger_audit_run()
    assert report.ok, report.render()


def test_margin_accounts_are_separate_ledger_accounts_and_spot_stays_the_default(cross, usdt):
    user, margin = cross
    assert margin.account.purpose == AccountPurpose.MARGIN and margin.account.user_id == user.pk
    assert margin_account_for(user).pk == margin.pk  # one cross account per user
    iso = margin_account_for(user, "BTCUSDT")
    assert iso.account.purpose == AccountPurpose.ISOLATED and iso.account.isolated_symbol == "BTCUSDT"
    assert Account.objects.filter(user=user).count() == 3
    assert balance_get(user=user, asset=usdt).available == D("1000000")  # the spot wallet


def test_transfer_in_and_out_moves_exactly_once_per_key(cross, usdt):
    user, margin = cross
    e1 = margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="t1")
    e2 = margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="t1")
    assert e1.pk == e2.pk
    assert free(margin.account, usdt) == D("1000")
    assert balance_get(user=user, asset=usdt).available == D("999000")
    margin_transfer(user=user, asset=usdt, amount="400", from_margin=margin, to_margin=None, idempotency_key="t2")
    assert free(margin.account, usdt) == D("600")
    audit_clean()


def test_isolated_account_accepts_only_its_two_assets(trader, terms, make_user, btc, usdt, db):
    from wallets.models import Asset

    eth = Asset.objects.create(symbol="ETH", name="Ether", precision=8)
    user = trader()
    iso = margin_account_for(user, "BTCUSDT")
    with pytest.raises(MarginError) as err:
        margin_transfer(user=user, asset=eth, amount="1", from_margin=None, to_margin=iso, idempotency_key="x")
    assert err.value.code == MarginErrorCode.ASSET_NOT_BORROWABLE
    assert not JournalEvent.objects.filter(idempotency_key="x").exists()


def test_borrow_moves_pool_cash_to_the_account_and_records_the_loan(cross, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    result = margin_borrow(margin=margin, asset=usdt, amount="1500", idempotency_key="b1")
    loan = Loan.objects.get(account=margin.account, asset=usdt)
    assert loan.principal == D("1500")
    assert result.loan_event.kind == LoanEventKind.BORROW and result.journal_event.kind == "borrow"
    assert free(margin.account, usdt) == D("2500")
    assert pool_available(usdt) == D("498500")
    # the same key again: nothing more
    again = margin_borrow(margin=margin, asset=usdt, amount="1500", idempotency_key="b1")
    assert again.loan_event.pk == result.loan_event.pk
    assert Loan.objects.get(pk=loan.pk).principal == D("1500")
    audit_clean()


def test_max_borrowable_keeps_the_collateral_level_at_the_tier_threshold(cross, usdt):
    # 1,000 USDT collateral (ratio 1), no debt, tier 1 borrow_above k = 1.5:
    # X ≤ (CV − k·L) / (k − r) = 1000 / (1.5 − 1) = 2000
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    assert max_borrowable(margin, usdt).amount == D("2000")
    margin_borrow(margin=margin, asset=usdt, amount="2000", idempotency_key="b")
    state = margin_state(margin)
    # 3000 / (2000 + the first hour's 0.04 interest) — just under 1.5: no more borrowing
    assert state.collateral_level == D("1.49997000") and state.state == MarginState.NO_BORROW
    assert max_borrowable(margin, usdt).amount == 0


def test_borrow_beyond_the_maximum_is_refused_and_writes_nothing(cross, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    with pytest.raises(MarginError) as err:
        margin_borrow(margin=margin, asset=usdt, amount="2000.00000001", idempotency_key="too-much")
    assert err.value.code == MarginErrorCode.BORROW_EXCEEDS_MAX
    assert not LoanEvent.objects.exists() and not JournalEvent.objects.filter(idempotency_key="too-much").exists()
    assert pool_available(usdt) == D("500000")


def test_borrow_is_capped_per_asset_and_tier(cross, btc):
    user, margin = cross
    margin_transfer(user=user, asset=btc, amount="100", from_margin=None, to_margin=margin, idempotency_key="in")
    most = max_borrowable(margin, btc)
    assert most.by_cap == D("10") and most.amount == D("10")
    with pytest.raises(MarginError):
        margin_borrow(margin=margin, asset=btc, amount="10.1", idempotency_key="b")


def test_repay_pays_interest_first_then_principal(cross, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    margin_borrow(margin=margin, asset=usdt, amount="1000", idempotency_key="b")
    loan = Loan.objects.get(account=margin.account, asset=usdt)
    interest = loan.interest  # the current hour, charged at borrow
    assert interest == interest_for_hour(principal=D("1000"), daily_rate=D("0.00048"), precision=8) == D("0.02")
    margin_repay(margin=margin, asset=usdt, amount="100", idempotency_key="r1")
    loan.refresh_from_db()
    assert loan.interest == 0 and loan.principal == D("1000") - (D("100") - interest)
    with pytest.raises(MarginError) as err:
        margin_repay(margin=margin, asset=usdt, amount=str(loan.principal + D("0.00000001")), idempotency_key="r2")
    assert err.value.code == MarginErrorCode.REPAY_EXCEEDS_DEBT
    margin_repay(margin=margin, asset=usdt, amount=str(loan.principal), idempotency_key="r3")
    loan.refresh_from_db()
    assert loan.owed == 0
    audit_clean()


def test_interest_accrues_once_per_loan_and_hour_rounded_up(cross, btc):
    user, margin = cross
    margin_transfer(user=user, asset=btc, amount="10", from_margin=None, to_margin=margin, idempotency_key="in")
    margin_borrow(margin=margin, asset=btc, amount="0.00000100", idempotency_key="b")
    loan = Loan.objects.get(account=margin.account, asset=btc)
    start = loan.interest
    # 0.000001 × 0.00024 / 24 = 1e-11 → one satoshi (ROUND_UP, in the exchange's favour)
    hour = HOUR0 + timedelta(days=400)
    assert interest_accrue(loan_id=loan.pk, hour=hour).interest == D("0.00000001")
    assert interest_accrue(loan_id=loan.pk, hour=hour) is None
    assert interest_accrue_all(hour=hour) == 0
    assert interest_accrue_all(hour=hour + timedelta(hours=1)) == 1
    loan.refresh_from_db()
    assert loan.interest == start + D("0.00000002")
    audit_clean()


def test_capitalised_interest_becomes_principal_and_the_audit_still_reconciles(cross, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    margin_borrow(margin=margin, asset=usdt, amount="1000", idempotency_key="b")
    loan = Loan.objects.get(account=margin.account, asset=usdt)
    interest_capitalise(loan_id=loan.pk, idempotency_key="cap")
    loan.refresh_from_db()
    assert loan.interest == 0 and loan.principal == D("1000.02")
    assert margin_audit_problems() == []
    audit_clean()


def test_transfer_out_is_refused_when_the_margin_level_forbids_it(cross, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    margin_borrow(margin=margin, asset=usdt, amount="1000", idempotency_key="b")
    state = margin_state(margin)  # CML = 2000 / 1000.02 ≤ 2 → NO_TRANSFER_OUT
    assert state.state == MarginState.NO_TRANSFER_OUT
    assert max_transferable(margin, usdt) == 0
    with pytest.raises(MarginError) as err:
        margin_transfer(user=user, asset=usdt, amount="1", from_margin=margin, to_margin=None, idempotency_key="out")
    assert err.value.code == MarginErrorCode.TRANSFER_EXCEEDS_MAX


def test_audit_finds_a_loan_changed_behind_its_events(cross, usdt):
    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    margin_borrow(margin=margin, asset=usdt, amount="500", idempotency_key="b")
    Loan.objects.filter(account=margin.account).update(principal=D("1"))
    problems = margin_audit_problems()
    assert any("!= events" in p for p in problems) and any("the lending pool lent net" in p for p in problems)
    assert not ledger_audit_run().ok


def test_a_margin_call_is_notified_once_and_again_after_24_hours(cross, btc, usdt, market, django_capture_on_commit_callbacks):
    from datetime import UTC, datetime

    from margin.models import MarginAccount
    from margin.services import margin_state_refresh
    from marketdata.mark import mark_set

    user, margin = cross
    margin_transfer(user=user, asset=btc, amount="10", from_margin=None, to_margin=margin, idempotency_key="in")
    margin_borrow(margin=margin, asset=usdt, amount="600", idempotency_key="b")  # TAV = 1000 + 600 at BTC 100
    # BTC at 12: TAV = 120 + 600 = 720 ≤ 1.3 × L (L = 600.012) = 780.0156, > 1.1 × L → margin call
    mark_set(market=market, price=D("12"))  # margin prices are marks (marketdata.mark)
    t0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
    with django_capture_on_commit_callbacks() as first:
        assert margin_state_refresh(margin_id=margin.pk, now=t0).state == MarginState.MARGIN_CALL
    with django_capture_on_commit_callbacks() as soon:
        margin_state_refresh(margin_id=margin.pk, now=t0.replace(hour=20))
    with django_capture_on_commit_callbacks() as next_day:
        margin_state_refresh(margin_id=margin.pk, now=t0.replace(day=2))
    assert (len(first), len(soon), len(next_day)) == (1, 0, 1)  # the margin.call event, once per 24 h
    stored = MarginAccount.objects.get(pk=margin.pk)
    assert stored.state == MarginState.MARGIN_CALL and stored.margin_call_notified_at == t0.replace(day=2)
    mark_set(market=market, price=D("6"))  # TAV 660 ≤ 1.1 × L = 660.0132 → liquidation
    assert margin_state_refresh(margin_id=margin.pk, now=t0.replace(day=3)).state == MarginState.LIQUIDATION


def test_pool_funding_needs_a_second_person(make_user, btc, terms):
    from margin.services import pool_funding_approve, pool_funding_request
    from tests.margin.conftest import staff_pair

    requester, approver = staff_pair(make_user)
    funding = pool_funding_request(staff=requester, asset=btc, amount="5", reason="more BTC to lend")
    with pytest.raises(MarginError) as err:
        pool_funding_approve(funding_id=funding.pk, staff=requester)
    assert err.value.code == MarginErrorCode.POOL_FUNDING_NOT_ALLOWED
    assert pool_available(btc) == D("50")
    pool_funding_approve(funding_id=funding.pk, staff=approver)
    assert pool_available(btc) == D("55")
    with pytest.raises(MarginError):
        pool_funding_approve(funding_id=funding.pk, staff=approver)  # applied once
    audit_clean()


def test_the_beat_tasks_run_their_services(cross, usdt):
    from margin import tasks
    from margin.models import MarginAccount

    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount="1000", from_margin=None, to_margin=margin, idempotency_key="in")
    margin_borrow(margin=margin, asset=usdt, amount="100", idempotency_key="b")
    assert tasks.states_refresh() == 1
    assert MarginAccount.objects.get(pk=margin.pk).margin_level == D("10.99978000")  # 1100 / 100.002, rounded down
    assert tasks.interest_accrue_all() == 0  # the current hour was charged at the borrow
    assert tasks.auto_repay_sweep() == 0


def test_the_pool_funding_admin_heads_its_list_with_the_pool_held_lent_and_interest_owed(client, django_user_model, cross, usdt):
    from margin.selectors import pool_overview
    from margin.services import margin_borrow, margin_transfer

    user, margin = cross
    margin_transfer(user=user, asset=usdt, amount=D("1000"), from_margin=None, to_margin=margin, idempotency_key="pool-view-in")
    margin_borrow(margin=margin, asset=usdt, amount=D("250"), idempotency_key="pool-view-borrow")
    lines = {p.asset: p for p in pool_overview()}
    held_before = lines["USDT"].available
    assert lines["USDT"].lent == D("250") and lines["BTC"].lent == 0 and lines["BTC"].available == D("50")

    staff = django_user_model.objects.get(email="staff@kk99.local")  # made by the pool funding fixture
    django_user_model.objects.filter(pk=staff.pk).update(is_superuser=True, is_staff=True)
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    page = client.get("/admin/margin/poolfunding/")
    assert page.status_code == 200
    assert f"USDT: {held_before.normalize():,f} held, 250 lent" in page.content.decode()
