"""The kill switch: one account or one market into cancel-only or reduce-only, with or
without cancelling every open order in its scope (staff in the admin; the account itself
through ``POST /api/v1/risk/kill-switch``). :func:`risk.services.order_check` enforces it.

Each engagement is a :class:`~risk.models.KillSwitch` row plus an ``accounts.audit`` row,
written in one transaction; the cancels are requested after it commits, through the one
cancel path (:func:`trading.services.order_cancel_all`)."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.audit import AuditAction, audit_record
from risk.models import KillSwitch
from trading import services as trading_services
from trading.models import Market, Order


def _cancel_scope(*, user: Any = None, market: Market | None = None) -> int:
    """Flag every open order in the scope for cancel (through the one cancel path,
    :func:`trading.services.order_cancel_all`, one (user, market) at a time)."""
    qs = Order.objects.filter(status__in=Order.OPEN_STATUSES, cancel_requested=False)
    if user is not None:
        qs = qs.filter(user_id=user.pk)
    if market is not None:
        qs = qs.filter(market_id=market.pk)
    # (user, market, ledger account): spot orders (account None) and each margin account's apart
    scopes = list(qs.order_by("user_id", "market_id", "ledger_account_id").values_list("user_id", "market_id", "ledger_account_id").distinct())
    if not scopes:
        return 0
    users = get_user_model().objects.in_bulk({u for u, _, _ in scopes})
    markets = Market.objects.in_bulk({m for _, m, _ in scopes})
    return sum(
        len(trading_services.order_cancel_all(user=users[u], market=markets[m], ledger_account=a)) for u, m, a in scopes
    )


def kill_switch_engage(
    *, actor: Any, mode: str, user: Any = None, market: Market | None = None, cancel_all: bool = True, reason: str = "", request: Any = None
) -> KillSwitch:
    """Put ``user`` or ``market`` (exactly one) into ``mode`` (cancel-only / reduce-only) and,
    with ``cancel_all``, cancel every open order in that scope. Re-engaging an engaged scope
    changes its mode. The switch row and its audit row commit together, *then* the cancels
    are requested (so no new order can slip in after the cancels were chosen)."""
    if (user is None) == (market is None):
        raise ValueError("A kill switch applies to exactly one account or one market.")
    mode = KillSwitch.Mode(mode)
    with transaction.atomic():
        scope = {"user": user} if user is not None else {"market": market}
        switch = KillSwitch.objects.select_for_update().filter(released_at__isnull=True, **scope).first()
        if switch is None:
            switch = KillSwitch.objects.create(mode=mode, reason=reason[:200], engaged_by=actor if getattr(actor, "pk", None) else None, **scope)
        else:
            KillSwitch.objects.filter(pk=switch.pk).update(mode=mode, reason=reason[:200])
            switch.mode, switch.reason = mode, reason[:200]
        audit_record(
            action=AuditAction.RISK_KILL_SWITCH_ENGAGED, actor=actor, target_user=user, request=request,
            target=f"kill_switch:{switch.pk}", details={"mode": str(mode), "market": market.symbol if market else None, "cancel_all": cancel_all, "reason": reason[:200]},
        )
    if cancel_all:
        switch.cancelled_orders = _cancel_scope(user=user, market=market)
        KillSwitch.objects.filter(pk=switch.pk).update(cancelled_orders=switch.cancelled_orders)
    return switch


def kill_switch_release(*, actor: Any, switch: KillSwitch, request: Any = None) -> KillSwitch:
    """Release an engaged switch (audited). Releasing a released switch changes nothing."""
    with transaction.atomic():
        now = timezone.now()
        updated = KillSwitch.objects.filter(pk=switch.pk, released_at__isnull=True).update(released_at=now, released_by=actor if getattr(actor, "pk", None) else None)
        if updated:
            audit_record(action=AuditAction.RISK_KILL_SWITCH_RELEASED, actor=actor, target_user=switch.user, request=request, target=f"kill_switch:{switch.pk}", details={"mode": switch.mode})
    switch.refresh_from_db()
    return switch


def account_kill(*, user: Any, engage: str | None = None, request: Any = None) -> dict[str, Any]:
    """The account's own kill switch (its API): cancel all its open orders on every market in
    one call, and with ``engage`` also put the account into that mode until released."""
    if engage:
        switch = kill_switch_engage(actor=user, mode=engage, user=user, cancel_all=True, reason="self", request=request)
        return {"cancelled_orders": switch.cancelled_orders, "kill_switch": switch}
    return {"cancelled_orders": _cancel_scope(user=user), "kill_switch": None}


def cancel_on_disconnect(*, user_id: int) -> int:
    """``/ws-api/v3`` cancel-on-disconnect: the account asked for its open orders to be
    cancelled when its session closes. Returns how many were sent for cancel."""
    user = get_user_model().objects.filter(pk=user_id).first()
    return 0 if user is None else _cancel_scope(user=user)
