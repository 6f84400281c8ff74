"""The KK99 token: the exchange's own asset, on the internal ledger only (no chain).

Supply changes need two people: one staff member requests an issue or burn, a *different* one
approves it (the database also refuses ``decided_by == requested_by``). Approval posts one
ledger event against the ISSUANCE account and writes the audit row in the same transaction.

:func:`token_supply_report` proves ``issued − burned = sum of all balances`` (users, fees,
clearing) and that the ISSUANCE account mirrors it; ``ledger_audit`` can call it.
"""
from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import AuditAction, audit_record
from kk99.conf import kk99_setting
from wallets.chains.errors import ChainsError, ChainsErrorCode
from wallets.chains.models import TokenSupplyKind, TokenSupplyRequest, TokenSupplyStatus
from wallets.models import Account, Asset, Balance, JournalEventKind, NEGATIVE_ALLOWED_KINDS, SystemAccountKind
from wallets.services import amount_quantize, ledger_credit, ledger_debit

TOKEN_PRECISION = 8


def token_asset() -> Asset:
    asset, _ = Asset.objects.get_or_create(
        symbol=kk99_setting("TOKEN_SYMBOL"), defaults={"name": "KK99 Token", "precision": TOKEN_PRECISION}
    )
    return asset


def staff_may_manage_supply(staff) -> bool:
    return bool(getattr(staff, "is_active", False) and getattr(staff, "is_staff", False) and staff.has_perm("chains.approve_token_supply"))


def token_supply_request(*, staff, kind: str, amount: Decimal | str, holder, reason: str, request: HttpRequest | None = None) -> TokenSupplyRequest:
    if not staff_may_manage_supply(staff):
        raise ChainsError(ChainsErrorCode.APPROVAL_NOT_ALLOWED, "Only authorised staff may request KK99 issuance or burns.")
    kind = TokenSupplyKind(kind)
    reason = (reason or "").strip()
    if not reason:
        raise ChainsError(ChainsErrorCode.INVALID_STATE, "A supply change needs a reason.")
    amount = amount_quantize(token_asset(), amount)
    with transaction.atomic():
        supply = TokenSupplyRequest.objects.create(kind=kind, amount=amount, holder=holder, reason=reason[:500], requested_by=staff)
        audit_record(
            action=AuditAction.TOKEN_SUPPLY_REQUESTED,
            actor=staff,
            target_user=holder,
            target=f"token_supply:{supply.pk}",
            request=request,
            details={"kind": kind, "amount": str(amount), "reason": reason[:500]},
        )
    return supply


def _decide(request_id: int, staff) -> TokenSupplyRequest:
    if not staff_may_manage_supply(staff):
        raise ChainsError(ChainsErrorCode.APPROVAL_NOT_ALLOWED, "Only authorised staff may decide KK99 supply changes.")
    supply = TokenSupplyRequest.objects.select_for_update().select_related("holder").get(pk=request_id)
    if supply.status != TokenSupplyStatus.PENDING:
        raise ChainsError(ChainsErrorCode.INVALID_STATE, f"The request is {supply.status}.")
    if supply.requested_by_id == staff.pk:
        raise ChainsError(ChainsErrorCode.APPROVAL_NOT_ALLOWED, "A second staff member must approve (two-person rule).")
    return supply


def token_supply_approve(*, request_id: int, staff, request: HttpRequest | None = None) -> TokenSupplyRequest:
    with transaction.atomic():
        supply = _decide(request_id, staff)
        service = ledger_credit if supply.kind == TokenSupplyKind.ISSUE else ledger_debit
        event = service(
            user=supply.holder,
            asset=token_asset(),
            amount=supply.amount,
            idempotency_key=f"token_supply:{supply.pk}",
            kind=JournalEventKind.ISSUANCE,
            counter=SystemAccountKind.ISSUANCE,
            memo=f"KK99 {supply.kind}: {supply.reason}",
            reference=f"token_supply:{supply.pk}",
            actor=staff,
        )
        supply.status, supply.decided_by, supply.decided_at, supply.journal_event = TokenSupplyStatus.APPROVED, staff, timezone.now(), event
        supply.save(update_fields=["status", "decided_by", "decided_at", "journal_event"])
        audit_record(
            action=AuditAction.TOKEN_SUPPLY_APPROVED,
            actor=staff,
            target_user=supply.holder,
            target=f"token_supply:{supply.pk}",
            request=request,
            details={"kind": supply.kind, "amount": str(supply.amount), "requested_by": supply.requested_by_id, "event_id": event.pk},
        )
    return supply


def token_supply_reject(*, request_id: int, staff, reason: str = "", request: HttpRequest | None = None) -> TokenSupplyRequest:
    with transaction.atomic():
        supply = _decide(request_id, staff)
        supply.status, supply.decided_by, supply.decided_at = TokenSupplyStatus.REJECTED, staff, timezone.now()
        supply.save(update_fields=["status", "decided_by", "decided_at"])
        audit_record(
            action=AuditAction.TOKEN_SUPPLY_REJECTED,
            actor=staff,
            target_user=supply.holder,
            target=f"token_supply:{supply.pk}",
            request=request,
            details={"reason": (reason or "")[:500]},
        )
    return supply


def token_supply_report() -> dict:
    """``issued``, ``burned``, ``outstanding`` (= issued − burned), ``balances_total`` (every
    account that may not go negative: users, FEES, WITHDRAWALS_CLEARING — available + locked),
    ``issuance_account`` (the ISSUANCE balance, which must equal −outstanding), and ``ok``."""
    asset = Asset.objects.filter(symbol=kk99_setting("TOKEN_SYMBOL")).first()
    zero = Decimal(0)
    if asset is None:
        return {"asset": kk99_setting("TOKEN_SYMBOL"), "issued": zero, "burned": zero, "outstanding": zero, "balances_total": zero, "issuance_account": zero, "ok": True, "problems": []}
    approved = TokenSupplyRequest.objects.filter(status=TokenSupplyStatus.APPROVED)
    issued = approved.filter(kind=TokenSupplyKind.ISSUE).aggregate(s=Sum("amount"))["s"] or zero
    burned = approved.filter(kind=TokenSupplyKind.BURN).aggregate(s=Sum("amount"))["s"] or zero
    balances = Balance.objects.filter(asset=asset)
    holders = balances.exclude(account__system_kind__in=[k.value for k in NEGATIVE_ALLOWED_KINDS]).aggregate(a=Sum("available"), l=Sum("locked"))
    balances_total = (holders["a"] or zero) + (holders["l"] or zero)
    issuance = Account.objects.filter(system_kind=SystemAccountKind.ISSUANCE).first()
    issuance_row = balances.filter(account=issuance).first() if issuance else None
    issuance_balance = (issuance_row.available + issuance_row.locked) if issuance_row else zero
    outstanding = issued - burned
    problems = []
    if outstanding != balances_total:
        problems.append(f"issued − burned = {outstanding} but balances total {balances_total}")
    if issuance_balance != -outstanding:
        problems.append(f"the ISSUANCE account holds {issuance_balance}, expected {-outstanding}")
    return {
        "asset": asset.symbol,
        "issued": issued,
        "burned": burned,
        "outstanding": outstanding,
        "balances_total": balances_total,
        "issuance_account": issuance_balance,
        "ok": not problems,
        "problems": problems,
    }


def token_supply_problems() -> list[str]:
    """The supply report's problems, prefixed — for ``wallets.audit`` to add to its report."""
    return [f"{kk99_setting('TOKEN_SYMBOL')} supply: {problem}" for problem in token_supply_report()["problems"]]
