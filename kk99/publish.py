"""The one path from committed state to real-time clients.

``publish_on_commit(event_type, payload, groups=[...])`` schedules a Channels ``group_send``
for after the surrounding transaction commits (immediately when there is none). Nothing is
ever sent for a transaction that rolls back; if the process dies between commit and send the
event is lost, which is why every stream carries a sequence number (trade ids, depth update
ids) so clients detect gaps and re-fetch a snapshot.

The Channels message is ``{"type": event_type, "payload": payload}``: a consumer handles
``"trade.batch"`` with a method ``trade_batch`` (Channels replaces dots with underscores).
Group names come only from the small functions below. Payloads must be JSON-serialisable
(Decimals as strings).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def market_group(symbol: str) -> str:
    """Public market data of one market: trades, depth diffs, ticker."""
    return f"market.{symbol.upper()}"


def user_group(user_id: int) -> str:
    """A user's private stream: order updates, fills, balance changes."""
    return f"user.{int(user_id)}"


def markets_group() -> str:
    """Every market's status changes (halts, cancel-only …)."""
    return "markets"


async def _send_all(layer, message: dict[str, Any], groups: list[str]) -> None:
    for group in groups:
        try:
            await layer.group_send(group, message)
        except Exception:  # noqa: BLE001 — after commit a failed send must not undo anything
            logger.exception("publish of %s to %s failed", message["type"], group)


def _send(event_type: str, payload: Any, groups: list[str]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(_send_all)(layer, {"type": event_type, "payload": payload}, groups)
    except Exception:  # noqa: BLE001
        logger.exception("publish of %s failed", event_type)


def publish_on_commit(event_type: str, payload: Any, *, groups: Iterable[str], using: str | None = None) -> None:
    """Send ``payload`` to ``groups`` after the current transaction commits."""
    group_list = list(groups)
    if not group_list:
        return
    transaction.on_commit(lambda: _send(event_type, payload, group_list), using=using)
