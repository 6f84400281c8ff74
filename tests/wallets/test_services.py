"""The ledger services: what they post, what they refuse, and that a refusal leaves no trace."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from wallets.audit import ledger_audit_run
from wallets.errors import (
    DuplicateLedgerEvent,
    InsufficientFunds,
    InvalidAmount,
    InvalidPosting,
    UnbalancedPosting,
    WalletsErrorCode,
)
from wallets.models import Account, Balance, Bucket, JournalEntry, JournalEvent, SystemAccountKind
from wallets.selectors import balance_get, system_balance
from wallets.services import (
    Leg,
    balance_hold,
    balance_release,
    ledger_credit,
    ledger_debit,
    ledger_settle,
    ledger_transfer,
    system_account,
    user_account,
)

pytestmark = pytest.mark.django_db

D = Decimal


def snapshot():
    return (
        JournalEvent.objects.count(),
        JournalEntry.objects.count(),
        sorted(Balance.objects.values_list("account_id", "asset_id", "available", "locked")),
    )


def assert_clean():
    report = ledger_audit_run()
    assert report.ok, report.render()


# --- credit / debit --------------------------------------------------------------------------


def test_credit_moves_money_from_deposits_clearing_to_the_users_available(alice, btc):
    event = ledger_credit(user=alice, asset=btc, amount=D("1.25"), idempotency_key="dep:1", kind="deposit", reference="deposit:1")

    assert balance_get(user=alice, asset=btc).available == D("1.25")
    assert system_balance(kind=SystemAccountKind.DEPOSITS_CLEARING, asset=btc).available == D("-1.25")
    assert event.kind == "deposit" and event.reference == "deposit:1"
    assert sorted(e.amount for e in event.entries.all()) == [D("-1.25"), D("1.25")]
    assert_clean()


def test_credit_creates_the_users_account_once(alice, btc, fund):
    fund(alice, btc, 1)
    fund(alice, btc, 2)
    assert Account.objects.filter(user=alice).count() == 1
    assert Balance.objects.filter(account__user=alice).count() == 1
    assert balance_get(user=alice, asset=btc).available == D(3)


def test_debit_moves_money_to_withdrawals_clearing(alice, btc, fund):
    fund(alice, btc, "2")
    ledger_debit(user=alice, asset=btc, amount=D("0.5"), idempotency_key="wd:1", kind="withdrawal")

    assert balance_get(user=alice, asset=btc).available == D("1.5")
    assert system_balance(kind=SystemAccountKind.WITHDRAWALS_CLEARING, asset=btc).available == D("0.5")
    assert_clean()


def test_debit_of_a_held_withdrawal_takes_from_locked(alice, btc, fund):
    fund(alice, btc, "2")
    balance_hold(user=alice, asset=btc, amount=D("0.5"), idempotency_key="wd:1:hold")
    ledger_debit(user=alice, asset=btc, amount=D("0.5"), idempotency_key="wd:1", kind="withdrawal", bucket=Bucket.LOCKED)

    row = balance_get(user=alice, asset=btc)
    assert (row.available, row.locked) == (D("1.5"), D(0))


def test_debit_beyond_available_is_refused_and_leaves_no_trace(alice, btc, fund):
    fund(alice, btc, "1")
    before = snapshot()

    with pytest.raises(InsufficientFunds) as excinfo:
        ledger_debit(user=alice, asset=btc, amount=D("1.00000001"), idempotency_key="wd:x", kind="withdrawal")

    assert excinfo.value.code == WalletsErrorCode.INSUFFICIENT_FUNDS
    assert excinfo.value.status == 409
    assert excinfo.value.details["shortfalls"][0]["missing"] == "1E-8" or D(excinfo.value.details["shortfalls"][0]["missing"]) == D("0.00000001")
    assert snapshot() == before
    assert not JournalEvent.objects.filter(idempotency_key="wd:x").exists()


def test_debit_from_a_user_who_never_had_the_asset_is_refused(alice, btc):
    with pytest.raises(InsufficientFunds):
        ledger_debit(user=alice, asset=btc, amount=1, idempotency_key="wd:none", kind="withdrawal")
    assert JournalEvent.objects.count() == 0
    assert_clean()


def test_withdrawals_clearing_may_not_go_negative(alice, btc):
    with pytest.raises(InsufficientFunds):
        ledger_credit(user=alice, asset=btc, amount=1, idempotency_key="refund", kind="withdrawal", counter=SystemAccountKind.WITHDRAWALS_CLEARING)


# --- hold / release ---------------------------------------------------------------------------


def test_hold_moves_available_to_locked_and_release_moves_it_back(alice, usdt, fund):
    fund(alice, usdt, "100")

    balance_hold(user=alice, asset=usdt, amount=D("30.50"), idempotency_key="order:1:hold")
    held = balance_get(user=alice, asset=usdt)
    balance_release(user=alice, asset=usdt, amount=D("10.25"), idempotency_key="order:1:release")
    released = balance_get(user=alice, asset=usdt)

    assert (held.available, held.locked) == (D("69.50"), D("30.50"))
    assert (released.available, released.locked) == (D("79.75"), D("20.25"))
    assert released.total == D(100)
    assert_clean()


def test_hold_beyond_available_is_refused_and_leaves_no_trace(alice, usdt, fund):
    fund(alice, usdt, "10")
    before = snapshot()
    with pytest.raises(InsufficientFunds):
        balance_hold(user=alice, asset=usdt, amount=D("10.01"), idempotency_key="h")
    assert snapshot() == before


def test_release_beyond_locked_is_refused(alice, usdt, fund):
    fund(alice, usdt, "10")
    balance_hold(user=alice, asset=usdt, amount=D("5"), idempotency_key="h")
    before = snapshot()
    with pytest.raises(InsufficientFunds):
        balance_release(user=alice, asset=usdt, amount=D("5.01"), idempotency_key="r")
    assert snapshot() == before


# --- transfer ---------------------------------------------------------------------------------


def test_transfer_moves_available_between_users(alice, bob, btc, fund):
    fund(alice, btc, "1")
    ledger_transfer(from_user=alice, to_user=bob, asset=btc, amount=D("0.4"), idempotency_key="t:1", kind="transfer")
    assert balance_get(user=alice, asset=btc).available == D("0.6")
    assert balance_get(user=bob, asset=btc).available == D("0.4")
    assert_clean()


def test_transfer_to_oneself_is_refused(alice, btc, fund):
    fund(alice, btc, "1")
    with pytest.raises(InvalidPosting):
        ledger_transfer(from_user=alice, to_user=alice, asset=btc, amount=1, idempotency_key="t", kind="transfer")


def test_transfer_without_funds_is_refused_and_creates_nothing_for_the_receiver(alice, bob, btc):
    with pytest.raises(InsufficientFunds):
        ledger_transfer(from_user=alice, to_user=bob, asset=btc, amount=1, idempotency_key="t", kind="transfer")
    assert not Balance.objects.filter(account__user=bob).exists()
    assert JournalEvent.objects.count() == 0


# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [D("0.001"), "0.005", D("1.234")])
def test_more_decimals_than_the_asset_precision_is_refused_not_rounded(alice, usdt, amount):
    with pytest.raises(InvalidAmount) as excinfo:
        ledger_credit(user=alice, asset=usdt, amount=amount, idempotency_key="p", kind="deposit")
    assert excinfo.value.code == WalletsErrorCode.PRECISION_EXCEEDED
    assert JournalEvent.objects.count() == 0


def test_trailing_zeros_beyond_precision_are_accepted_and_quantized(alice, usdt):
    ledger_credit(user=alice, asset=usdt, amount=D("1.5000000"), idempotency_key="p", kind="deposit")
    assert balance_get(user=alice, asset=usdt).available == D("1.50")


@pytest.mark.parametrize("amount", [0, D("0.00"), -1, D("-0.01"), "abc", D("NaN"), D("Infinity"), 1.5, True, None, D("1e20")])
def test_non_positive_non_decimal_or_huge_amounts_are_refused(alice, usdt, amount):
    with pytest.raises(InvalidAmount) as excinfo:
        ledger_credit(user=alice, asset=usdt, amount=amount, idempotency_key="bad", kind="deposit")
    assert excinfo.value.code == WalletsErrorCode.INVALID_AMOUNT
    assert JournalEvent.objects.count() == 0


def test_full_18_decimal_precision_is_kept_exactly(alice, make_user, db):
    from wallets.models import Asset

    eth = Asset.objects.create(symbol="ETH", name="Ether", precision=18)
    amount = D("12345678901.123456789012345678")
    ledger_credit(user=alice, asset=eth, amount=amount, idempotency_key="eth", kind="deposit")
    got = balance_get(user=alice, asset=eth).available
    from django.db import connection

    if connection.vendor == "postgresql":
        assert got == amount
    else:  # SQLite keeps 15 significant digits (documented in docs/ledger.md)
        assert abs(got - amount) < D("0.0001")


# --- idempotency ------------------------------------------------------------------------------


def test_the_same_idempotency_key_twice_is_refused_and_applies_once(alice, btc):
    ledger_credit(user=alice, asset=btc, amount=1, idempotency_key="deposit:chain:tx1:0", kind="deposit")

    with pytest.raises(DuplicateLedgerEvent) as excinfo:
        ledger_credit(user=alice, asset=btc, amount=1, idempotency_key="deposit:chain:tx1:0", kind="deposit")

    assert excinfo.value.status == 409
    assert excinfo.value.code == WalletsErrorCode.DUPLICATE_EVENT
    assert JournalEvent.objects.filter(idempotency_key="deposit:chain:tx1:0").count() == 1
    assert balance_get(user=alice, asset=btc).available == D(1)
    assert_clean()


def test_a_duplicate_key_leaves_the_callers_transaction_usable(alice, bob, btc, fund):
    fund(alice, btc, "5")
    with transaction.atomic():
        ledger_transfer(from_user=alice, to_user=bob, asset=btc, amount=1, idempotency_key="t:1", kind="transfer")
        with pytest.raises(DuplicateLedgerEvent):
            ledger_transfer(from_user=alice, to_user=bob, asset=btc, amount=1, idempotency_key="t:1", kind="transfer")
        # still usable: more work in the same transaction commits
        ledger_transfer(from_user=alice, to_user=bob, asset=btc, amount=2, idempotency_key="t:2", kind="transfer")

    assert balance_get(user=bob, asset=btc).available == D(3)
    assert_clean()


def test_a_refused_call_inside_a_callers_transaction_rolls_back_only_itself(alice, bob, btc, fund):
    fund(alice, btc, "1")
    with transaction.atomic():
        balance_hold(user=alice, asset=btc, amount=D("0.5"), idempotency_key="h:1")
        with pytest.raises(InsufficientFunds):
            ledger_transfer(from_user=alice, to_user=bob, asset=btc, amount=1, idempotency_key="t:big", kind="transfer")
    assert not JournalEvent.objects.filter(idempotency_key="t:big").exists()
    assert balance_get(user=alice, asset=btc).locked == D("0.5")
    assert_clean()


def test_the_database_itself_refuses_a_second_event_with_the_same_key(db):
    JournalEvent.objects.create(kind="deposit", idempotency_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        JournalEvent.objects.create(kind="deposit", idempotency_key="k")


@pytest.mark.parametrize("key", ["", "   ", "x" * 201])
def test_a_missing_or_overlong_idempotency_key_is_refused(alice, btc, key):
    with pytest.raises(InvalidPosting):
        ledger_credit(user=alice, asset=btc, amount=1, idempotency_key=key, kind="deposit")


# --- append-only and constraints ---------------------------------------------------------------


def test_events_and_entries_cannot_be_changed_or_deleted(alice, btc, fund):
    event = fund(alice, btc, 1)
    entry = event.entries.first()
    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()
    with pytest.raises(RuntimeError):
        entry.save()
    with pytest.raises(RuntimeError):
        entry.delete()


def test_the_database_refuses_a_negative_user_balance(alice, btc, fund):
    fund(alice, btc, 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Balance.objects.filter(account__user=alice).update(available=D("-1"))


def test_system_counter_accounts_may_go_negative_but_fees_may_not(btc, db):
    assert system_account(SystemAccountKind.ISSUANCE).allow_negative
    assert system_account(SystemAccountKind.DEPOSITS_CLEARING).allow_negative
    assert system_account(SystemAccountKind.ADJUSTMENTS).allow_negative
    assert not system_account(SystemAccountKind.FEES).allow_negative
    assert not system_account(SystemAccountKind.WITHDRAWALS_CLEARING).allow_negative


# --- settle -----------------------------------------------------------------------------------


def test_settle_applies_a_trade_with_fees_as_one_event(alice, bob, btc, usdt, fund):
    fund(alice, usdt, "1000")  # buyer
    fund(bob, btc, "1")  # seller
    balance_hold(user=alice, asset=usdt, amount=D("501"), idempotency_key="o1:hold")
    balance_hold(user=bob, asset=btc, amount=D("0.5"), idempotency_key="o2:hold")

    event = ledger_settle(
        idempotency_key="trade:1",
        kind="trade",
        reference="trade:1",
        legs=[
            Leg(alice, usdt, Bucket.LOCKED, D("-500.50")),
            Leg(bob, usdt, Bucket.AVAILABLE, D("500")),
            Leg(SystemAccountKind.FEES, usdt, Bucket.AVAILABLE, D("0.50")),
            Leg(bob, btc, Bucket.LOCKED, D("-0.5")),
            Leg(alice, btc, Bucket.AVAILABLE, D("0.4995")),
            Leg(SystemAccountKind.FEES, btc, Bucket.AVAILABLE, D("0.0005")),
        ],
    )

    assert event.entries.count() == 6
    a_usdt, a_btc = balance_get(user=alice, asset=usdt), balance_get(user=alice, asset=btc)
    assert (a_usdt.available, a_usdt.locked) == (D("499"), D("0.50"))
    assert a_btc.available == D("0.4995")
    assert balance_get(user=bob, asset=usdt).available == D(500)
    assert balance_get(user=bob, asset=btc).total == D("0.5")
    assert system_balance(kind="fees", asset=btc).available == D("0.0005")
    assert_clean()


def test_settle_sums_legs_per_row_so_intermediate_negatives_do_not_matter(alice, bob, btc, fund):
    fund(alice, btc, "1")
    ledger_settle(
        idempotency_key="s",
        kind="trade",
        legs=[
            Leg(alice, btc, Bucket.AVAILABLE, D("-1")),
            Leg(bob, btc, Bucket.AVAILABLE, D("1")),
            Leg(bob, btc, Bucket.AVAILABLE, D("-1")),
            Leg(alice, btc, Bucket.AVAILABLE, D("1")),
        ],
    )
    assert balance_get(user=alice, asset=btc).available == D(1)
    assert JournalEntry.objects.filter(event__idempotency_key="s").count() == 4
    assert_clean()


def test_settle_refuses_legs_that_do_not_balance_per_asset(alice, bob, btc, usdt, fund):
    fund(alice, btc, "1")
    before = snapshot()
    with pytest.raises(UnbalancedPosting) as excinfo:
        ledger_settle(
            idempotency_key="s",
            kind="trade",
            legs=[Leg(alice, btc, Bucket.AVAILABLE, D("-1")), Leg(bob, usdt, Bucket.AVAILABLE, D("1"))],
        )
    assert set(excinfo.value.details["sums"]) == {"BTC", "USDT"}
    assert snapshot() == before


def test_settle_refuses_the_whole_batch_when_one_user_is_short(alice, bob, make_user, btc, fund):
    carol = make_user()
    fund(alice, btc, "1")
    before = snapshot()
    with pytest.raises(InsufficientFunds) as excinfo:
        ledger_settle(
            idempotency_key="batch",
            kind="trade",
            legs=[
                Leg(alice, btc, Bucket.AVAILABLE, D("-1")),
                Leg(bob, btc, Bucket.AVAILABLE, D("1")),
                Leg(carol, btc, Bucket.AVAILABLE, D("-0.1")),
                Leg(bob, btc, Bucket.AVAILABLE, D("0.1")),
            ],
        )
    assert len(excinfo.value.details["shortfalls"]) == 1
    assert snapshot()[:2] == before[:2]


def test_settle_accepts_accounts_users_and_system_kinds_and_skips_zero_legs(alice, btc, fund):
    fund(alice, btc, "1")
    event = ledger_settle(
        idempotency_key="fee",
        kind="fee",
        legs=[
            Leg(user_account(alice), btc, "available", "-0.1"),
            Leg(system_account("fees"), btc, "available", "0.05"),
            Leg("fees", btc, "available", "0.05"),
            Leg(alice, btc, "locked", 0),
        ],
    )
    assert event.entries.count() == 3
    assert system_balance(kind="fees", asset=btc).available == D("0.1")


@pytest.mark.parametrize(
    "legs_factory",
    [
        lambda a, asset: [],
        lambda a, asset: [Leg(a, asset, "frozen", 1), Leg("fees", asset, "available", -1)],
        lambda a, asset: [Leg("nope", asset, "available", 1)],
        lambda a, asset: ["not a leg"],
    ],
    ids=["no-legs", "bad-bucket", "bad-system-kind", "not-a-leg"],
)
def test_settle_refuses_malformed_postings(alice, btc, legs_factory):
    with pytest.raises(InvalidPosting):
        ledger_settle(idempotency_key="bad", kind="trade", legs=legs_factory(alice, btc))
    assert JournalEvent.objects.count() == 0


def test_settle_refuses_an_unknown_kind(alice, bob, btc, fund):
    fund(alice, btc, 1)
    with pytest.raises(InvalidPosting):
        ledger_settle(idempotency_key="k", kind="gift", legs=[Leg(alice, btc, "available", -1), Leg(bob, btc, "available", 1)])
