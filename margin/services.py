"""Margin write services: accounts, transfers, borrowing, repaying, interest, pool funding,
margin orders (services write, selectors read; docs/margin.md).

Every business action is ONE transaction: the journal event (``wallets.services``), the loan
and its :class:`~margin.models.LoanEvent`, the audit row and the events (after commit).

Locking, always in this order (no deadlocks with the engine, which locks order rows and then
balance rows and never a margin row): the :class:`MarginAccount` row (serialises the actions
of one account, so two transfers out cannot both pass the margin check) → the
:class:`Loan` row → balance rows (inside ``ledger_settle``, in their one global order).

Idempotency: each action takes an ``idempotency_key``; it keys the journal event and the loan
event. Calling again with the same key returns the first result and moves nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_UP, Decimal, localcontext
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import AuditAction, audit_record
from kk99.conf import kk99_setting
from kk99.publish import publish_on_commit, user_group
from margin import selectors
from margin.errors import MarginError, MarginErrorCode
from margin.models import (
    AutoRepay,
    Loan,
    LoanEvent,
    LoanEventKind,
    MarginAccount,
    MarginAsset,
    MarginState as MarginStateKind,
    PoolFunding,
    PoolFundingStatus,
)
from trading.errors import invalid_parameter
from trading.models import Market, Order, Trade
from trading.services import order_place
from wallets.errors import DuplicateLedgerEvent
from wallets.models import Account, AccountPurpose, Asset, Balance, Bucket, JournalEvent, JournalEventKind, SystemAccountKind
from wallets.services import LEDGER_DECIMAL_CONTEXT, Leg, amount_quantize, balance_delta_publish, ledger_settle, user_account


# --- accounts -----------------------------------------------------------------------------------


def margin_account_for(user: AbstractBaseUser, isolated_symbol: str | None = None, *, tier: int | None = None) -> MarginAccount:
    """The user's cross margin account (``isolated_symbol`` None) or isolated account for a
    market, created on first use with its ledger account."""
    symbol = (isolated_symbol or "").upper()
    if symbol and not Market.objects.filter(symbol=symbol).exists():
        raise MarginError(MarginErrorCode.PAIR_INVALID, f"No market {symbol}.", symbol=symbol)
    existing = selectors.margin_account_get(user=user, isolated_symbol=symbol or None)
    if existing is not None:
        return existing
    purpose = AccountPurpose.ISOLATED if symbol else AccountPurpose.MARGIN
    with transaction.atomic():
        account, _ = Account.objects.get_or_create(user_id=user.pk, purpose=purpose, isolated_symbol=symbol)
        margin, _ = MarginAccount.objects.get_or_create(
            account=account, defaults={"user_id": user.pk, "tier": tier or kk99_setting("MARGIN")["DEFAULT_TIER"]}
        )
    margin.account = account
    return margin


def _lock_margin(margin: MarginAccount) -> MarginAccount:
    locked = MarginAccount.objects.select_for_update(of=("self",)).select_related("account").get(pk=margin.pk)
    return locked


def _existing_event(key: str) -> JournalEvent | None:
    return JournalEvent.objects.filter(idempotency_key=key).first()


def _isolated_assets(margin: MarginAccount) -> set[str] | None:
    """The two assets an isolated account may hold/borrow (None for cross)."""
    symbol = margin.account.isolated_symbol
    if not symbol:
        return None
    market = Market.objects.select_related("base", "quote").get(symbol=symbol)
    return {market.base.symbol, market.quote.symbol}


# --- transfers ----------------------------------------------------------------------------------


def margin_transfer(
    *,
    user: AbstractBaseUser,
    asset: Asset,
    amount: Decimal | str | int,
    from_margin: MarginAccount | None,
    to_margin: MarginAccount | None,
    idempotency_key: str,
    request=None,
) -> JournalEvent:
    """Move ``amount`` of ``asset`` between the user's accounts: spot (None) ↔ cross ↔ isolated.
    Out of a margin account only up to :func:`margin.selectors.max_transferable` (refused in
    any state but NORMAL while there is debt). One MARGIN_TRANSFER journal event."""
    amount = amount_quantize(asset, amount)
    if from_margin is None and to_margin is None or (from_margin and to_margin and from_margin.pk == to_margin.pk):
        raise MarginError(MarginErrorCode.TRANSFER_EXCEEDS_MAX, "A transfer needs two different accounts.")
    for m in (from_margin, to_margin):
        if m is not None and m.account.user_id != user.pk:
            raise MarginError(MarginErrorCode.ACCOUNT_MISSING, "Margin account does not exist.", status=404)
    if to_margin is not None:
        allowed = _isolated_assets(to_margin)
        if allowed is not None and asset.symbol not in allowed:
            raise MarginError(MarginErrorCode.ASSET_NOT_BORROWABLE, f"{to_margin.account.isolated_symbol} holds only {sorted(allowed)}.", asset=asset.symbol)
    existing = _existing_event(idempotency_key)
    if existing is not None:
        return existing
    with transaction.atomic():
        if from_margin is not None:
            locked = _lock_margin(from_margin)
            state = selectors.margin_state(locked)
            if locked.liquidating or state.state == MarginStateKind.LIQUIDATION:
                raise MarginError(MarginErrorCode.ACCOUNT_LIQUIDATING, "The margin account is in liquidation.", status=409)
            most = selectors.max_transferable(locked, asset, state=state)
            if amount > most:
                raise MarginError(
                    MarginErrorCode.TRANSFER_EXCEEDS_MAX, f"At most {most} {asset.symbol} may be transferred out now ({state.state}).",
                    max_transferable=str(most), state=state.state,
                )
        src = from_margin.account if from_margin is not None else user_account(user)
        dst = to_margin.account if to_margin is not None else user_account(user)
        try:
            event = ledger_settle(
                idempotency_key=idempotency_key, kind=JournalEventKind.MARGIN_TRANSFER,
                legs=[Leg(src, asset, Bucket.AVAILABLE, -amount), Leg(dst, asset, Bucket.AVAILABLE, amount)],
                memo=f"{src} → {dst}", reference=f"margin-transfer:{user.pk}",
            )
        except DuplicateLedgerEvent:
            return _existing_event(idempotency_key)
        audit_record(
            action=AuditAction.MARGIN_TRANSFER, actor=user, target_user=user, target=f"journal:{event.pk}", request=request,
            details={"asset": asset.symbol, "amount": str(amount), "from": str(src), "to": str(dst)},
        )
        # Binance's balanceUpdate on each side's stream (the spot wallet's: account_id None).
        for margin, delta in ((from_margin, -amount), (to_margin, amount)):
            balance_delta_publish(
                user_id=user.pk, asset=asset, delta=delta, reason="margin_transfer", reference=f"journal:{event.pk}",
                account_id=None if margin is None else margin.account_id,
            )
        _balances_changed(user.pk, [asset.symbol])
    return event


def _balances_changed(user_id: int, symbols: list[str]) -> None:
    """After commit: the user's clients re-read balances (spot and margin views)."""
    publish_on_commit("balance.update", {"assets": sorted(set(symbols))}, groups=[user_group(user_id)])
    publish_on_commit("margin.update", {"assets": sorted(set(symbols))}, groups=[user_group(user_id)])


# --- loans --------------------------------------------------------------------------------------


def _loan_locked(account: Account, asset: Asset) -> Loan:
    Loan.objects.get_or_create(account=account, asset=asset)
    return Loan.objects.select_for_update().get(account=account, asset=asset)


def _loan_event(loan: Loan, *, kind: LoanEventKind, principal=Decimal(0), interest=Decimal(0), key: str, journal_event=None, hour=None, daily_rate=None, reference: str = "") -> LoanEvent:
    """Append the loan event and move the loan by it (the caller holds the loan's lock)."""
    event = LoanEvent.objects.create(
        loan=loan, kind=kind, principal=principal, interest=interest, idempotency_key=key, journal_event=journal_event,
        hour=hour, daily_rate=daily_rate, reference=reference[:100],
    )
    loan.principal += principal
    loan.interest += interest
    loan.save(update_fields=["principal", "interest", "updated_at"])
    return event


@dataclass(frozen=True)
class LoanResult:
    loan_event: LoanEvent
    journal_event: JournalEvent | None


def _replay(key: str) -> LoanResult | None:
    done = LoanEvent.objects.select_related("journal_event").filter(idempotency_key=key).first()
    return LoanResult(done, done.journal_event) if done is not None else None


def margin_borrow(
    *, margin: MarginAccount, asset: Asset, amount: Decimal | str | int, idempotency_key: str, reference: str = "", request=None
) -> LoanResult:
    """Borrow ``amount`` of ``asset`` from the lending pool into the margin account: ONE
    transaction of a BORROW journal event (LENDING_POOL → account, AVAILABLE), the loan's
    principal += amount and its BORROW loan event. Refused beyond
    :func:`margin.selectors.max_borrowable` (collateral after haircuts, tier cap, pool) or when
    the state forbids borrowing. The current hour's interest is charged at once if the loan
    has not been charged for it yet (see :func:`interest_accrue`)."""
    amount = amount_quantize(asset, amount)
    done = _replay(idempotency_key)
    if done is not None:
        return done
    allowed = _isolated_assets(margin)
    if allowed is not None and asset.symbol not in allowed:
        raise MarginError(MarginErrorCode.ASSET_NOT_BORROWABLE, f"{margin.account.isolated_symbol} may borrow only {sorted(allowed)}.", asset=asset.symbol)
    terms = MarginAsset.objects.filter(asset=asset).first()
    if terms is None or not terms.borrowable:
        raise MarginError(MarginErrorCode.ASSET_NOT_BORROWABLE, f"{asset.symbol} cannot be borrowed.", asset=asset.symbol)
    with transaction.atomic():
        locked = _lock_margin(margin)
        state = selectors.margin_state(locked)
        if locked.liquidating or state.state == MarginStateKind.LIQUIDATION:
            raise MarginError(MarginErrorCode.ACCOUNT_LIQUIDATING, "The margin account is in liquidation.", status=409)
        most = selectors.max_borrowable(locked, asset, state=state)
        if amount > most.by_pool:
            raise MarginError(MarginErrorCode.POOL_INSUFFICIENT, f"The pool holds {most.by_pool} {asset.symbol}.", asset=asset.symbol)
        if amount > most.amount:
            raise MarginError(
                MarginErrorCode.BORROW_EXCEEDS_MAX, f"At most {most.amount} {asset.symbol} may be borrowed now ({state.state}).",
                max_borrowable=str(most.amount), state=state.state,
            )
        loan = _loan_locked(locked.account, asset)
        journal = ledger_settle(
            idempotency_key=idempotency_key, kind=JournalEventKind.BORROW,
            legs=[Leg(SystemAccountKind.LENDING_POOL, asset, Bucket.AVAILABLE, -amount), Leg(locked.account, asset, Bucket.AVAILABLE, amount)],
            memo=f"borrow {amount} {asset.symbol}", reference=reference or f"margin:{locked.pk}",
        )
        event = _loan_event(loan, kind=LoanEventKind.BORROW, principal=amount, key=idempotency_key, journal_event=journal, reference=reference)
        _accrue_locked(loan, hour=hour_of(timezone.now()), tier=locked.tier)
        _audit_user_action(AuditAction.MARGIN_BORROW, locked, request, asset=asset.symbol, amount=str(amount), journal_event=journal.pk)
        _balances_changed(locked.account.user_id, [asset.symbol])
    return LoanResult(event, journal)


def _audit_user_action(action: AuditAction, margin: MarginAccount, request, **details: Any) -> None:
    user_id = margin.account.user_id
    audit_record(
        action=action, actor=getattr(request, "user", None) if request is not None else None,
        target_user=margin.account.user if user_id else None, target=f"margin:{margin.pk}", request=request, details=details,
    )


def margin_repay(
    *, margin: MarginAccount, asset: Asset, amount: Decimal | str | int, idempotency_key: str, reference: str = "", request=None
) -> LoanResult:
    """Repay ``amount`` of ``asset`` from the margin account's free balance: interest first,
    then principal. ONE REPAY journal event (account −amount; INTEREST_INCOME +interest part;
    LENDING_POOL +principal part) with its loan event. Refused above what is owed."""
    amount = amount_quantize(asset, amount)
    done = _replay(idempotency_key)
    if done is not None:
        return done
    with transaction.atomic():
        locked = _lock_margin(margin)
        loan = Loan.objects.select_for_update().filter(account=locked.account, asset=asset).first()
        owed = loan.owed if loan is not None else Decimal(0)
        if amount > owed:
            raise MarginError(MarginErrorCode.REPAY_EXCEEDS_DEBT, f"{owed} {asset.symbol} is owed.", owed=str(owed), asset=asset.symbol)
        result = _repay_locked(locked, loan, amount, key=idempotency_key, reference=reference)
        _audit_user_action(AuditAction.MARGIN_REPAY, locked, request, asset=asset.symbol, amount=str(amount), journal_event=result.journal_event.pk)
    return result


def _repay_locked(margin: MarginAccount, loan: Loan, amount: Decimal, *, key: str, reference: str = "") -> LoanResult:
    interest = min(amount, loan.interest)
    principal = amount - interest
    asset = loan.asset
    legs = [Leg(margin.account, asset, Bucket.AVAILABLE, -amount)]
    if interest:
        legs.append(Leg(SystemAccountKind.INTEREST_INCOME, asset, Bucket.AVAILABLE, interest))
    if principal:
        legs.append(Leg(SystemAccountKind.LENDING_POOL, asset, Bucket.AVAILABLE, principal))
    journal = ledger_settle(
        idempotency_key=key, kind=JournalEventKind.REPAY, legs=legs,
        memo=f"repay {amount} {asset.symbol} (interest {interest}, principal {principal})", reference=reference or f"margin:{margin.pk}",
    )
    event = _loan_event(loan, kind=LoanEventKind.REPAY, principal=-principal, interest=-interest, key=key, journal_event=journal, reference=reference)
    _balances_changed(margin.account.user_id, [asset.symbol])
    return LoanResult(event, journal)


# --- interest -----------------------------------------------------------------------------------


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def interest_for_hour(*, principal: Decimal, daily_rate: Decimal, precision: int) -> Decimal:
    """One hour's interest: principal × daily_rate / 24, rounded UP to the asset's minor unit
    (in the exchange's favour: a loan never accrues less than its exact interest, and any
    non-zero loan at a non-zero rate accrues at least one minor unit per hour)."""
    with localcontext(LEDGER_DECIMAL_CONTEXT):
        return (principal * daily_rate / 24).quantize(Decimal(1).scaleb(-precision), rounding=ROUND_UP)


def _accrue_locked(loan: Loan, *, hour: datetime, tier: int) -> LoanEvent | None:
    """Accrue ``hour``'s interest on the locked ``loan`` unless already done (one per loan and
    hour: the key and a partial unique index)."""
    if loan.principal <= 0:
        return None
    rate = selectors.interest_rate(asset=loan.asset, tier=tier, at=hour)
    if rate is None or rate.daily_rate <= 0:
        return None
    amount = interest_for_hour(principal=loan.principal, daily_rate=rate.daily_rate, precision=loan.asset.precision)
    key = f"interest:{loan.pk}:{hour:%Y%m%dT%H}"
    if LoanEvent.objects.filter(idempotency_key=key).exists():
        return None
    try:
        with transaction.atomic():
            return _loan_event(loan, kind=LoanEventKind.ACCRUE, interest=amount, key=key, hour=hour, daily_rate=rate.daily_rate)
    except IntegrityError:  # a concurrent accrual of the same hour won
        loan.refresh_from_db(fields=["principal", "interest"])
        return None


def interest_accrue(*, loan_id: int, hour: datetime | None = None) -> LoanEvent | None:
    """Accrue one hour of interest on one loan (default: the current UTC hour). Idempotent per
    (loan, hour); None when nothing was due or it was already accrued."""
    hour = hour_of(hour or timezone.now())
    with transaction.atomic():
        loan = Loan.objects.select_for_update(of=("self",)).select_related("asset", "account__margin").filter(pk=loan_id).first()
        if loan is None:
            return None
        return _accrue_locked(loan, hour=hour, tier=loan.account.margin.tier)


def interest_accrue_all(*, hour: datetime | None = None) -> int:
    """Accrue ``hour`` on every loan with principal; each loan in its own transaction (a crash
    midway is finished by the next run: done loans are skipped by their key). Returns how
    many accrued."""
    hour = hour_of(hour or timezone.now())
    done = 0
    for loan_id in Loan.objects.filter(principal__gt=0).order_by("pk").values_list("pk", flat=True).iterator():
        if interest_accrue(loan_id=loan_id, hour=hour) is not None:
            done += 1
    return done


def interest_capitalise(*, loan_id: int, idempotency_key: str) -> LoanResult | None:
    """Turn a loan's accrued interest into principal: the pool pays the interest income on the
    borrower's behalf (INTEREST journal event LENDING_POOL → INTEREST_INCOME) and the loan's
    principal grows by it — so "Σ principal = what left the pool" still holds."""
    done = _replay(idempotency_key)
    if done is not None:
        return done
    with transaction.atomic():
        loan = Loan.objects.select_for_update().select_related("asset").get(pk=loan_id)
        if loan.interest <= 0:
            return None
        x = loan.interest
        journal = ledger_settle(
            idempotency_key=idempotency_key, kind=JournalEventKind.INTEREST,
            legs=[Leg(SystemAccountKind.LENDING_POOL, loan.asset, Bucket.AVAILABLE, -x), Leg(SystemAccountKind.INTEREST_INCOME, loan.asset, Bucket.AVAILABLE, x)],
            memo=f"capitalise {x} {loan.asset.symbol} interest of loan {loan.pk}", reference=f"loan:{loan.pk}",
        )
        event = _loan_event(loan, kind=LoanEventKind.CAPITALISE, principal=x, interest=-x, key=idempotency_key, journal_event=journal)
    return LoanResult(event, journal)


# --- states and margin calls --------------------------------------------------------------------


def margin_state_refresh(*, margin_id: int, now: datetime | None = None) -> selectors.MarginState:
    """Recompute and store one account's state; notify a margin call (again every
    ``MARGIN_CALL_REPEAT_HOURS`` while it lasts). The notification is the ``margin.call``
    event on the user's group, after commit."""
    now = now or timezone.now()
    repeat = timedelta(hours=kk99_setting("MARGIN")["MARGIN_CALL_REPEAT_HOURS"])
    with transaction.atomic():
        margin = _lock_margin(MarginAccount(pk=margin_id))
        state = selectors.margin_state(margin)
        margin.state, margin.margin_level, margin.state_at = state.state, state.level, now
        fields = ["state", "margin_level", "state_at"]
        if state.state == MarginStateKind.MARGIN_CALL:
            if margin.margin_call_notified_at is None or now - margin.margin_call_notified_at >= repeat:
                margin.margin_call_notified_at = now
                fields.append("margin_call_notified_at")
                payload = {"margin_account": margin.pk, "isolated_symbol": margin.account.isolated_symbol, "margin_level": str(state.level), "state": state.state}
                publish_on_commit("margin.call", payload, groups=[user_group(margin.account.user_id)])
                audit_record(action=AuditAction.MARGIN_CALL, target_user=margin.account.user, target=f"margin:{margin.pk}", details=payload)
        elif state.state not in (MarginStateKind.LIQUIDATION,) and margin.margin_call_notified_at is not None:
            margin.margin_call_notified_at = None
            fields.append("margin_call_notified_at")
        margin.save(update_fields=fields)
    return state


def margin_states_refresh_all(*, now: datetime | None = None) -> int:
    ids = MarginAccount.objects.filter(account__loans__principal__gt=0).distinct().order_by("pk").values_list("pk", flat=True)
    n = 0
    for margin_id in ids:
        margin_state_refresh(margin_id=margin_id, now=now)
        n += 1
    return n


# --- the lending pool ---------------------------------------------------------------------------

FUND_PERMISSION = "margin.fund_pool"
FUND_APPROVE_PERMISSION = "margin.fund_pool_approve"


def _staff_has(staff: Any, permission: str) -> bool:
    return bool(getattr(staff, "is_active", False) and getattr(staff, "is_staff", False) and staff.has_perm(permission))


def pool_funding_request(*, staff: AbstractBaseUser, asset: Asset, amount: Decimal | str | int, reason: str, request=None) -> PoolFunding:
    """Ask to move ``amount`` (+ into, − out of the pool) between ISSUANCE and the lending
    pool. Applied only when another staff member approves."""
    if not _staff_has(staff, FUND_PERMISSION):
        raise MarginError(MarginErrorCode.POOL_FUNDING_NOT_ALLOWED, "Not allowed to request pool funding.", status=403)
    amount = amount_quantize(asset, amount, signed=True)
    if not (reason or "").strip():
        raise MarginError(MarginErrorCode.POOL_FUNDING_NOT_ALLOWED, "Pool funding needs a reason.")
    with transaction.atomic():
        funding = PoolFunding.objects.create(asset=asset, amount=amount, reason=reason.strip()[:500], requested_by=staff)
        audit_record(action=AuditAction.MARGIN_POOL_FUNDING_REQUESTED, actor=staff, target=f"pool-funding:{funding.pk}", request=request,
                     details={"asset": asset.symbol, "amount": str(amount)})
    return funding


def pool_funding_approve(*, funding_id: int, staff: AbstractBaseUser, request=None) -> PoolFunding:
    """Apply a pending pool funding (a POOL_FUNDING journal event keyed by the request): a
    second staff member only."""
    if not _staff_has(staff, FUND_APPROVE_PERMISSION):
        raise MarginError(MarginErrorCode.POOL_FUNDING_NOT_ALLOWED, "Not allowed to approve pool funding.", status=403)
    with transaction.atomic():
        funding = PoolFunding.objects.select_for_update(of=("self",)).select_related("asset").filter(pk=funding_id).first()
        if funding is None or funding.status != PoolFundingStatus.PENDING:
            raise MarginError(MarginErrorCode.POOL_FUNDING_NOT_ALLOWED, "No pending pool funding with that id.", status=404)
        if funding.requested_by_id == staff.pk:
            raise MarginError(MarginErrorCode.POOL_FUNDING_NOT_ALLOWED, "A second staff member must approve (two-person rule).", status=403)
        event = ledger_settle(
            idempotency_key=funding.ledger_key, kind=JournalEventKind.POOL_FUNDING,
            legs=[Leg(SystemAccountKind.LENDING_POOL, funding.asset, Bucket.AVAILABLE, funding.amount),
                  Leg(SystemAccountKind.ISSUANCE, funding.asset, Bucket.AVAILABLE, -funding.amount)],
            memo=funding.reason, reference=funding.ledger_key, actor=staff,
        )
        funding.status, funding.decided_by, funding.decided_at, funding.journal_event = PoolFundingStatus.APPROVED, staff, timezone.now(), event
        funding.save(update_fields=["status", "decided_by", "decided_at", "journal_event"])
        audit_record(action=AuditAction.MARGIN_POOL_FUNDING_APPROVED, actor=staff, target=funding.ledger_key, request=request,
                     details={"asset": funding.asset.symbol, "amount": str(funding.amount), "event_id": event.pk})
    return funding


def pool_funding_reject(*, funding_id: int, staff: AbstractBaseUser, request=None) -> PoolFunding:
    if not _staff_has(staff, FUND_APPROVE_PERMISSION):
        raise MarginError(MarginErrorCode.POOL_FUNDING_NOT_ALLOWED, "Not allowed to decide pool funding.", status=403)
    with transaction.atomic():
        funding = PoolFunding.objects.select_for_update().filter(pk=funding_id, status=PoolFundingStatus.PENDING).first()
        if funding is None:
            raise MarginError(MarginErrorCode.POOL_FUNDING_NOT_ALLOWED, "No pending pool funding with that id.", status=404)
        if funding.requested_by_id == staff.pk:
            raise MarginError(MarginErrorCode.POOL_FUNDING_NOT_ALLOWED, "A second staff member must decide (two-person rule).", status=403)
        funding.status, funding.decided_by, funding.decided_at = PoolFundingStatus.REJECTED, staff, timezone.now()
        funding.save(update_fields=["status", "decided_by", "decided_at"])
        audit_record(action=AuditAction.MARGIN_POOL_FUNDING_REJECTED, actor=staff, target=funding.ledger_key, request=request, details={})
    return funding


# --- margin orders ------------------------------------------------------------------------------


def margin_order_place(*, user: AbstractBaseUser, margin: MarginAccount, side_effect_type: str = Order.SideEffect.NO_SIDE_EFFECT, **fields: Any) -> Order:
    """Place an ordinary order whose funds come from ``margin``'s account, through the same
    ``trading.services.order_place`` (same checks — plus ``check_margin`` — and the same C
    book). MARGIN_BUY borrows the hold's shortfall (hold − free balance of the held asset) in
    the order's own transaction, right before the hold: a refused borrow or hold leaves
    nothing behind. AUTO_REPAY is applied after the order is final (:func:`auto_repay_order`)."""
    side_effect_type = str(side_effect_type or Order.SideEffect.NO_SIDE_EFFECT).upper()
    if side_effect_type not in Order.SideEffect.values:
        raise invalid_parameter("side_effect_type", f"Invalid sideEffectType: {side_effect_type!r}.")
    if margin.account.user_id != user.pk:
        raise MarginError(MarginErrorCode.ACCOUNT_MISSING, "Margin account does not exist.", status=404)

    def borrow_shortfall(order: Order, hold) -> None:
        free = Balance.objects.filter(account=margin.account, asset=hold.asset).values_list("available", flat=True).first() or Decimal(0)
        shortfall = hold.amount - free
        if shortfall > 0:
            shortfall = shortfall.quantize(Decimal(1).scaleb(-hold.asset.precision), rounding=ROUND_UP)
            margin_borrow(margin=margin, asset=hold.asset, amount=shortfall, idempotency_key=f"order:{order.pk}:borrow", reference=f"order:{order.pk}")

    before = borrow_shortfall if side_effect_type == Order.SideEffect.MARGIN_BUY else None
    return order_place(user=user, ledger_account=margin.account, side_effect_type=side_effect_type, before_hold=before, **fields)


def _received(order: Order) -> tuple[int, Decimal]:
    """(asset id, net amount) an order received from its fills: base for a buy, quote for a
    sell, minus the fees charged in that asset (from its trades)."""
    market = order.market
    buy = order.side == Order.Side.BUY
    asset_id = market.base_id if buy else market.quote_id
    gross = order.executed_qty if buy else order.cumulative_quote_qty
    fees = Decimal(0)
    for fee, fee_asset in Trade.objects.filter(market_id=market.pk, maker_order_id=order.pk).values_list("maker_fee", "maker_fee_asset_id"):
        fees += fee if fee_asset == asset_id else 0
    for fee, fee_asset in Trade.objects.filter(market_id=market.pk, taker_order_id=order.pk).values_list("taker_fee", "taker_fee_asset_id"):
        fees += fee if fee_asset == asset_id else 0
    return asset_id, gross - fees


def auto_repay_order(*, order_id: int) -> LoanResult | None:
    """AUTO_REPAY: once the margin order is final, repay the loan in the asset it received with
    min(net proceeds, owed, free balance), at once — in the transaction that records the order
    as handled (:class:`AutoRepay`, one per order): a second call, or a loan taken later,
    never uses these proceeds again. Returns the repayment, or None (not final yet, nothing
    received, no debt, already handled)."""
    order = Order.objects.select_related("market").filter(pk=order_id, side_effect_type=Order.SideEffect.AUTO_REPAY).first()
    if order is None or order.ledger_account_id is None or order.status not in Order.FINAL_STATUSES:
        return None
    with transaction.atomic():
        margin = _lock_margin(MarginAccount.objects.get(account_id=order.ledger_account_id))
        if AutoRepay.objects.filter(order_id=order.pk).exists():
            return None
        result = None
        asset_id, received = _received(order) if order.executed_qty > 0 else (None, Decimal(0))
        loan = None
        if received > 0:
            loan = Loan.objects.select_for_update().select_related("asset").filter(account=margin.account, asset_id=asset_id).first()
        if loan is not None and loan.owed > 0:
            free = Balance.objects.filter(account=margin.account, asset_id=asset_id).values_list("available", flat=True).first() or Decimal(0)
            amount = min(received, loan.owed, free)
            if amount > 0:
                result = _repay_locked(margin, loan, amount, key=f"autorepay:{order.pk}", reference=f"order:{order.pk}")
        AutoRepay.objects.create(order=order, loan_event=result.loan_event if result else None)
    return result


def auto_repay_sweep(*, now: datetime | None = None) -> int:
    """Apply :func:`auto_repay_order` to every final AUTO_REPAY order of the look-back window
    not handled yet (the beat task, every few seconds; safe to call any time). Returns how
    many repaid."""
    now = now or timezone.now()
    since = now - timedelta(hours=kk99_setting("MARGIN")["AUTO_REPAY_LOOKBACK_HOURS"])
    ids = (
        Order.objects.filter(side_effect_type=Order.SideEffect.AUTO_REPAY, status__in=Order.FINAL_STATUSES, updated_at__gte=since)
        .exclude(pk__in=AutoRepay.objects.values("order_id"))
        .order_by("pk").values_list("pk", flat=True)
    )
    n = 0
    for order_id in ids:
        if auto_repay_order(order_id=order_id) is not None:
            n += 1
    return n
