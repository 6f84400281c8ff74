"""Recording an order on PostgreSQL: the order, its hold and the hold's balance event are ONE
statement (``wallets.services.balance_hold_for_row``) — the same rows as the general path
(order INSERT + ``balance_hold`` in a transaction), one round trip, nothing written on refusal."""
from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from events.models import OutboxEvent
from trading import services
from trading.errors import TradingError
from trading.holds import order_hold
from trading.models import Order, TradeGroup, TradeGroupMember
from trading.orders import order_request_build
from wallets.models import JournalEntry, JournalEvent

from .conftest import bal, place

pytestmark = [pytest.mark.postgres]


def _hold_rows(order: Order) -> tuple:
    event = JournalEvent.objects.get(idempotency_key=f"order:{order.pk}:hold")
    entries = sorted((e.account_id, e.asset_id, e.bucket, e.amount) for e in JournalEntry.objects.filter(event=event))
    outbox = OutboxEvent.objects.get(event_type="balance.changed", payload__journal_event_id=event.pk)
    payload = {k: v for k, v in outbox.payload.items() if k != "journal_event_id"}
    return (event.kind, event.reference, event.memo), entries, (outbox.stream, outbox.version, payload)


def _shape(rows: tuple, order: Order) -> tuple:
    """The hold rows with the order's own id taken out, to compare two orders."""
    (kind, reference, memo), entries, outbox = rows
    return (kind, reference.replace(str(order.pk), "N"), memo), entries, outbox


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_an_order_is_one_statement_and_no_begin_or_commit(alice, market):
    place(alice, market, "BUY", price="100", quantity="1")  # warm the per-process caches
    with CaptureQueriesContext(connection) as ctx:
        order = services.order_record(user=alice, request=_request(market), hold=_hold(market))
    writes = [q["sql"] for q in ctx.captured_queries]
    assert len(writes) == 1 and writes[0].lstrip().startswith("WITH bal AS"), writes
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING_NEW
    assert bal(alice, market.quote) == (D("1000000") - D("200"), D("200"))  # both orders hold 100 × 1


def _request(market):
    return order_request_build(market=market, side="BUY", type="LIMIT", quantity="1", price="100")


def _hold(market):
    return order_hold(request=_request(market), reference=None)


def test_the_one_statement_writes_what_the_general_path_writes(alice, bob, market, monkeypatch):
    fast = place(alice, market, "BUY", price="100", quantity="1.5")
    monkeypatch.setattr(services, "balance_hold_for_row_supported", lambda **kw: False)
    general = place(bob, market, "BUY", price="100", quantity="1.5")
    fast_rows, general_rows = _hold_rows(fast), _hold_rows(general)
    # Same event, entries (each account's own) and balance event payload (each account's own).
    assert _shape(fast_rows, fast)[0] == _shape(general_rows, general)[0]
    assert [(b, a) for _, _, b, a in fast_rows[1]] == [(b, a) for _, _, b, a in general_rows[1]]
    assert {k: v for k, v in fast_rows[2][2].items() if k != "account_id"} == {k: v for k, v in general_rows[2][2].items() if k != "account_id"}
    assert fast_rows[2][1] == general_rows[2][1]
    for order, user in ((fast, alice), (general, bob)):
        row = Order.objects.get(pk=order.pk)
        assert (row.held_amount, row.held_remaining, row.status) == (D("150"), D("150"), Order.Status.PENDING_NEW)
        assert bal(user, market.quote) == (D("1000000") - D("150"), D("150"))


def test_insufficient_funds_writes_nothing_and_leaves_the_callers_transaction_usable(alice, market):
    before = (Order.objects.count(), JournalEvent.objects.count(), OutboxEvent.objects.count(), bal(alice, market.base))
    with transaction.atomic():
        with pytest.raises(TradingError) as info:
            place(alice, market, "SELL", price="100", quantity="101")  # alice has 100 BTC
        assert info.value.code == "insufficient_balance"
        assert Order.objects.count() == before[0]  # the transaction still answers
    assert (Order.objects.count(), JournalEvent.objects.count(), OutboxEvent.objects.count(), bal(alice, market.base)) == before


def test_a_duplicate_client_order_id_inside_a_transaction_returns_the_first_order(alice, market):
    with transaction.atomic():
        first = place(alice, market, "BUY", price="100", quantity="1", client_order_id="same-id")
        again = place(alice, market, "BUY", price="100", quantity="1", client_order_id="same-id")
        assert again.pk == first.pk
    assert Order.objects.filter(client_order_id="same-id").count() == 1
    assert bal(alice, market.quote) == (D("1000000") - D("100"), D("100"))


def test_the_statement_snapshots_the_users_trade_group_on_the_order(alice, bob, market):
    group = TradeGroup.objects.create(name="desk")
    TradeGroupMember.objects.create(user=alice, group=group)
    grouped = place(alice, market, "BUY", price="100", quantity="1")
    alone = place(bob, market, "BUY", price="100", quantity="1")
    assert grouped.trade_group_id == group.pk and Order.objects.get(pk=grouped.pk).trade_group_id == group.pk
    assert alone.trade_group_id is None and Order.objects.get(pk=alone.pk).trade_group_id is None
