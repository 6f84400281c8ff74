"""Self-trade prevention across accounts (Binance ``tradeGroupId`` semantics).

The C book prevents a match when the taker and the maker have the same ``owner``. The engine
passes :func:`stp_owner` as that owner: the user id, or — for an order placed while its owner
was in a :class:`~trading.models.TradeGroup` — the negated group id, so every account of a
group is one owner to the book. The group is snapshotted on the order at placement
(``Order.trade_group_id``) so a rebuild gives the same book as live trading."""
from __future__ import annotations

from itertools import combinations

from trading.models import TradeGroupMember


def stp_owner(order) -> int:
    group = order.trade_group_id
    return -group if group else order.user_id


def trade_group_of(*, user_id: int) -> int | None:
    return TradeGroupMember.objects.filter(user_id=user_id).values_list("group_id", flat=True).first()


def trade_group_sql(user_param: str) -> str:
    """:func:`trade_group_of` as an SQL expression (a user is in at most one group), for a
    statement that writes a new order: ``user_param`` names the user-id parameter."""
    table = TradeGroupMember._meta.db_table
    return f'(SELECT g.group_id FROM "{table}" g WHERE g.user_id = %({user_param})s)'


def trade_group_pairs(*, user_ids: set[int] | None = None) -> set[tuple[int, int]]:
    """Pairs (a < b) of users in the same trade group (limited to groups of ``user_ids``)."""
    qs = TradeGroupMember.objects.all()
    if user_ids is not None:
        groups = TradeGroupMember.objects.filter(user_id__in=user_ids).values("group_id")
        qs = qs.filter(group_id__in=groups)
    members: dict[int, list[int]] = {}
    for user_id, group_id in qs.values_list("user_id", "group_id"):
        members.setdefault(group_id, []).append(user_id)
    return {pair for users in members.values() for pair in combinations(sorted(users), 2)}
