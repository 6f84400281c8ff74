"""Surveillance writes: running the detectors, recording alerts, the case workflow, thresholds.

One business action = one transaction with its audit rows (accounts.audit.audit_record)."""
from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from accounts.audit import AuditAction, AuditLog, audit_record
from accounts.models import LoginDevice
from surveillance import detectors as d
from surveillance.errors import SurveillanceError
from surveillance.errors import SurveillanceErrorCode as E
from surveillance.models import (
    AccountLink,
    Alert,
    Case,
    CaseEvent,
    Detector,
    DetectorCursor,
    DetectorThreshold,
    DetectorThresholdChange,
    MarketMakerExemption,
)
from surveillance.selectors import (
    exempt_accounts,
    linked_pairs,
    order_records,
    threshold_params,
    trade_records,
)
from trading.models import Market, Order, Trade
from wallets.chains.models import Deposit, DepositStatus, Withdrawal



def _book_excerpt(*, market_id: int, at, levels: int = 5) -> dict:
    """The resting depth around ``at``, replayed from the orders table: limit orders created
    before ``at`` and not final before it (their remaining quantity at ``at`` is approximated by
    the quantity not executed)."""
    rows = (
        Order.objects.filter(market_id=market_id, created_at__lte=at, updated_at__gte=at, price__isnull=False, type=Order.Type.LIMIT)
        .values_list("side", "price", "quantity", "executed_qty")[:2000]
    )
    book = {"BUY": {}, "SELL": {}}
    for side, price, qty, executed in rows:
        book[side][price] = book[side].get(price, Decimal(0)) + (qty - executed)
    bids = sorted(book["BUY"].items(), reverse=True)[:levels]
    asks = sorted(book["SELL"].items())[:levels]
    return {"at": at.isoformat(), "bids": [[str(p), str(q)] for p, q in bids], "asks": [[str(p), str(q)] for p, q in asks]}


def detectors_run(*, market: Market, now=None, detectors: tuple[str, ...] | None = None) -> list[Alert]:
    """Run the detectors over what is new in ``market`` since its cursor (plus each detector's
    look-back), record new alerts, advance the cursor. Safe to re-run: alerts are keyed."""
    now = now or timezone.now()
    cursor, _ = DetectorCursor.objects.get_or_create(market=market)
    last_trade = Trade.objects.filter(market=market).aggregate(m=Max("pk"))["m"] or 0
    last_order = Order.objects.filter(market=market).aggregate(m=Max("pk"))["m"] or 0
    new_trades = trade_records(market_id=market.pk, after_pk=cursor.last_trade_pk, upto_pk=last_trade)
    new_orders = Order.objects.filter(market=market, pk__gt=cursor.last_order_pk).exists() or Order.objects.filter(market=market, updated_at__gt=cursor.last_run_at or now).exists()
    if not new_trades and not new_orders:
        return []
    first_new = min([t.ts for t in new_trades] + ([cursor.last_run_at] if cursor.last_run_at and new_orders else []) or [now])
    findings: list[d.Finding] = []
    exempt = exempt_accounts(market_id=market.pk, at=now)
    for name in detectors or Detector.values:
        p = threshold_params(detector=name, market_id=market.pk)
        since = first_new - timedelta(seconds=d.LOOKBACK_S[name](p))
        trades = trade_records(market_id=market.pk, since=since, upto_pk=last_trade)
        if name == "wash":
            findings += d.detect_wash(trades, p=p, linked=linked_pairs(user_ids={u for t in trades for u in (t.buyer, t.seller)}), exempt=exempt)
        elif name == "spoofing":
            findings += d.detect_spoofing(order_records(market_id=market.pk, since=since), trades, p=p, exempt=exempt)
        elif name == "pump":
            # a bar is final once its dump window has passed: bars that recent are looked at again
            findings += [f for f in d.detect_pump(trades, p=p) if f.window_end > first_new - timedelta(seconds=p["dump_window_s"])]
        elif name == "marking_close":
            closes = d.closes_between(first_new, now, p["close_interval_s"], _session_closes(market, first_new, now))
            findings += d.detect_marking_close(trades, p=p, closes=closes)
        elif name == "cancel_ratio":
            findings += d.detect_cancel_ratio(order_records(market_id=market.pk, since=since), trades, p=p, exempt=exempt)
        elif name == "stp_misuse":
            findings += d.detect_stp_misuse(order_records(market_id=market.pk, since=since), p=p)
    created = []
    with transaction.atomic():
        for f in findings:
            alert = alert_record(market=market, finding=f, now=now)
            if alert is not None:
                created.append(alert)
        DetectorCursor.objects.filter(pk=cursor.pk).update(last_trade_pk=last_trade, last_order_pk=last_order, last_run_at=now)
    return created


def _session_closes(market: Market, start, end) -> list:
    """Equity session closes between start and end (in the market's time zone)."""
    if market.asset_class != Market.AssetClass.EQUITY or market.session_close is None:
        return []
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(market.session_timezone)
    out, day = [], start.astimezone(tz).date()
    while day <= end.astimezone(tz).date():
        close = datetime.combine(day, market.session_close, tzinfo=tz)
        if day.weekday() in market.session_weekdays and day.isoformat() not in market.holidays and start <= close <= end:
            out.append(close)
        day += timedelta(days=1)
    return out


def alert_record(*, market: Market, finding: d.Finding, now=None) -> Alert | None:
    """Insert the alert for ``finding`` unless its key exists; opens a case for it. None if it
    was already recorded."""
    key = finding.key(market.pk)
    if Alert.objects.filter(alert_key=key).exists():
        return None
    evidence = dict(finding.evidence)
    evidence["book"] = _book_excerpt(market_id=market.pk, at=finding.detected_at or finding.window_end)
    if finding.detected_at:
        evidence["detected_at"] = finding.detected_at.isoformat()
    alert = Alert.objects.create(
        alert_key=key, detector=finding.detector, market=market, score=Decimal(str(round(finding.score, 4))), severity=finding.severity,
        accounts=list(finding.accounts), window_start=finding.window_start, window_end=finding.window_end, evidence=evidence,
        created_at=now or timezone.now(),
    )
    if finding.detector == "wash" and evidence.get("kind") == "round_trip" and len(finding.accounts) == 2:
        link_add(user_a_id=finding.accounts[0], user_b_id=finding.accounts[1], source=AccountLink.Source.ROUND_TRIP, evidence=f"alert:{key[:16]}")
    case = _case_for(alert)
    alert.case = case
    alert.save(update_fields=["case"])
    return alert


def _case_for(alert: Alert) -> Case:
    """Alerts join an open case on the same market and accounts; otherwise a new case."""
    for case in Case.objects.filter(state__in=(Case.State.OPEN, Case.State.ASSIGNED, Case.State.ESCALATED), alerts__market=alert.market).distinct():
        if any(set(a.accounts) & set(alert.accounts) for a in case.alerts.all()):
            return case
    case = Case.objects.create(created_at=alert.created_at, updated_at=alert.created_at, title=f"{alert.get_detector_display()} on {alert.market.symbol}: accounts {', '.join(map(str, alert.accounts)) or '-'}")
    CaseEvent.objects.create(case=case, from_state="", to_state=Case.State.OPEN, reason=f"alert {alert.alert_key[:16]}")
    return case


def link_add(*, user_a_id: int, user_b_id: int, source: str, evidence: str = "") -> AccountLink | None:
    if user_a_id == user_b_id:
        return None
    a, b = sorted((user_a_id, user_b_id))
    link, _ = AccountLink.objects.get_or_create(user_a_id=a, user_b_id=b, source=source, defaults={"evidence": evidence[:200]})
    return link


# A value shared by more accounts than this is a service, not a person (an exchange's hot wallet
# paying many users, a carrier NAT, an internet café): it links nobody.
LINK_MAX_SHARED = 10


def _links_from(*, source: str, qs, key_fields: tuple[str, ...], user_field: str, describe) -> int:
    """Link every pair of accounts (up to LINK_MAX_SHARED) that share a value of ``key_fields``
    in ``qs``; the evidence names the value (``describe``) and the rows behind it."""
    added = 0
    shared = (
        qs.values(*key_fields).annotate(n=Count(user_field, distinct=True)).filter(n__gt=1, n__lte=LINK_MAX_SHARED).order_by(*key_fields)
    )
    for key in shared[:1000]:
        key = {k: key[k] for k in key_fields}
        refs: dict[int, list[int]] = {}
        for user_id, pk in qs.filter(**key).order_by("pk").values_list(user_field, "pk"):
            if user_id is not None:
                refs.setdefault(user_id, []).append(pk)
        users = sorted(refs)
        for i, a in enumerate(users):
            for b in users[i + 1:]:
                evidence = f"{describe(key)}; rows {refs[a][:3]} / {refs[b][:3]}"
                _, created = AccountLink.objects.get_or_create(user_a_id=a, user_b_id=b, source=source, defaults={"evidence": evidence[:200]})
                added += created
    return added


def links_infer() -> int:
    """Links from shared withdrawal addresses, deposit sources (the same sending address, or
    one chain transaction paying several accounts), login IPs (the audit log) and login
    devices (accounts.LoginDevice fingerprints). Returns the number of links added."""
    S = AccountLink.Source
    deposits = Deposit.objects.exclude(status=DepositStatus.ORPHANED)
    return sum((
        _links_from(source=S.WITHDRAWAL_ADDRESS, qs=Withdrawal.objects.exclude(address=""), key_fields=("chain", "address"), user_field="user_id",
                    describe=lambda k: f"withdrawals to {k['chain']} {k['address']}"),
        _links_from(source=S.DEPOSIT_SOURCE, qs=deposits.exclude(from_address=""), key_fields=("chain", "from_address"), user_field="user_id",
                    describe=lambda k: f"deposits from {k['chain']} {k['from_address']}"),
        _links_from(source=S.DEPOSIT_TX, qs=deposits, key_fields=("chain", "txid"), user_field="user_id",
                    describe=lambda k: f"deposits in {k['chain']} tx {k['txid']}"),
        _links_from(source=S.LOGIN_IP, qs=AuditLog.objects.filter(action=AuditAction.LOGIN, ip__isnull=False), key_fields=("ip",), user_field="target_user_id",
                    describe=lambda k: f"logins from {k['ip']}"),
        _links_from(source=S.DEVICE, qs=LoginDevice.objects.all(), key_fields=("fingerprint",), user_field="user_id",
                    describe=lambda k: f"logins from device {k['fingerprint'][:16]}"),
    ))


# --- the case workflow -------------------------------------------------------------------------


def case_transition(*, case: Case, to_state: str, actor, reason: str = "", assignee=None) -> Case:
    """Move ``case`` along its workflow (Case.TRANSITIONS). Dismissing, escalating and
    confirming need a reason. Writes a CaseEvent and an accounts audit row."""
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if to_state not in Case.TRANSITIONS[locked.state]:
            raise SurveillanceError(E.BAD_TRANSITION, f"A {locked.state} case cannot become {to_state}.", state=locked.state, to_state=to_state)
        if to_state in (Case.State.DISMISSED, Case.State.ESCALATED, Case.State.CONFIRMED) and not reason.strip():
            raise SurveillanceError(E.REASON_REQUIRED, "A reason is required for this change.")
        CaseEvent.objects.create(case=locked, actor=actor, from_state=locked.state, to_state=to_state, reason=reason[:500])
        audit_record(action=AuditAction.SURVEILLANCE_CASE, actor=actor, target=f"case:{locked.pk}", details={"from": locked.state, "to": to_state, "reason": reason[:500]})
        locked.state = to_state
        locked.reason = reason[:500]
        if to_state == Case.State.ASSIGNED:
            locked.assignee = assignee or actor
        locked.updated_at = timezone.now()
        locked.save()
    return locked


def case_accounts(*, case: Case) -> list[int]:
    return sorted({u for a in case.alerts.all() for u in a.accounts})


def case_freeze_accounts(*, case: Case, actor, reason: str = "") -> list[int]:
    """Freeze every account of a confirmed case. Returns the ids newly frozen."""
    from accounts.models import User
    from accounts.services import user_freeze

    case.refresh_from_db()
    if case.state != Case.State.CONFIRMED:
        raise SurveillanceError(E.NOT_CONFIRMED, "Only a confirmed case can freeze accounts.", state=case.state)
    frozen = []
    with transaction.atomic():
        for user in User.objects.filter(pk__in=case_accounts(case=case)).order_by("pk"):
            if user_freeze(user=user, actor=actor, reason=f"surveillance case {case.pk}: {reason}"[:300]):
                frozen.append(user.pk)
        CaseEvent.objects.create(case=case, actor=actor, from_state=case.state, to_state=case.state, reason=f"froze accounts {frozen}: {reason}"[:500])
        audit_record(action=AuditAction.SURVEILLANCE_FREEZE, actor=actor, target=f"case:{case.pk}", details={"frozen": frozen, "reason": reason[:300]})
    return frozen


# --- thresholds ----------------------------------------------------------------------------------


def threshold_set(*, detector: str, market: Market | None, params: dict, actor, reason: str = "") -> DetectorThreshold:
    """Override parameters of ``detector`` (for ``market``, or all markets). Unknown names
    and non-positive values are refused; the change is kept in the threshold's history."""
    known = d.DEFAULTS.get(detector)
    if known is None:
        raise SurveillanceError(E.UNKNOWN_PARAMETER, f"Unknown detector {detector!r}.")
    clean = {}
    for k, v in params.items():
        if k not in known:
            raise SurveillanceError(E.UNKNOWN_PARAMETER, f"{detector} has no parameter {k!r}.", parameter=k)
        try:
            value = float(v)
        except (TypeError, ValueError):
            raise SurveillanceError(E.BAD_PARAMETER, f"{k} must be a number.", parameter=k) from None
        if not (math.isfinite(value) and value > 0):
            raise SurveillanceError(E.BAD_PARAMETER, f"{k} must be a positive number.", parameter=k)
        clean[k] = value
    with transaction.atomic():
        row, _ = DetectorThreshold.objects.select_for_update().get_or_create(detector=detector, market=market)
        old = dict(row.params)
        row.params = {**old, **clean}
        row.updated_by = actor if getattr(actor, "pk", None) else None
        row.updated_at = timezone.now()
        row.save()
        DetectorThresholdChange.objects.create(threshold=row, old_params=old, new_params=row.params, actor=row.updated_by, reason=reason[:300])
        audit_record(action=AuditAction.SURVEILLANCE_THRESHOLD, actor=actor, target=f"threshold:{detector}:{market.symbol if market else '*'}", details={"old": old, "new": row.params, "reason": reason[:300]})
    return row


# --- the market-maker registry (two people) ------------------------------------------------------


def _mm_audit(*, exemption: MarketMakerExemption, actor, step: str, reason: str = "") -> None:
    audit_record(action=AuditAction.SURVEILLANCE_MM_EXEMPTION, actor=actor, target_user=exemption.user, target=f"mm_exemption:{exemption.pk}",
                 details={"step": step, "programme": exemption.programme, "markets": sorted(exemption.markets.values_list("symbol", flat=True)),
                          "valid_from": exemption.valid_from.isoformat(), "valid_to": exemption.valid_to.isoformat() if exemption.valid_to else None,
                          "reason": reason[:300]})


def mm_exemption_request(*, user, markets, programme: str, valid_from, valid_to=None, requested_by, reason: str = "") -> MarketMakerExemption:
    """File a market-maker registration for review; it exempts nothing until a second person
    approves it (:func:`mm_exemption_approve`)."""
    if not programme.strip():
        raise SurveillanceError(E.REASON_REQUIRED, "A programme is required.", field="programme")
    if valid_to is not None and valid_to <= valid_from:
        raise SurveillanceError(E.BAD_VALIDITY, "valid_to must be after valid_from.")
    if requested_by.pk == user.pk:
        raise SurveillanceError(E.OWN_ACCOUNT, "Staff cannot register their own account.")
    with transaction.atomic():
        exemption = MarketMakerExemption.objects.create(user=user, programme=programme.strip()[:100], valid_from=valid_from, valid_to=valid_to,
                                                        requested_by=requested_by, reason=reason[:300], requested_at=timezone.now())
        exemption.markets.set(markets or [])
        _mm_audit(exemption=exemption, actor=requested_by, step="requested", reason=reason)
    return exemption


def _mm_decide(*, exemption_id: int, actor, to_status: str, reason: str) -> MarketMakerExemption:
    with transaction.atomic():
        exemption = MarketMakerExemption.objects.select_for_update().get(pk=exemption_id)
        if exemption.status != MarketMakerExemption.Status.REQUESTED:
            raise SurveillanceError(E.NOT_PENDING, f"This exemption is {exemption.status}.", status_now=exemption.status)
        if actor.pk == exemption.requested_by_id:
            raise SurveillanceError(E.SAME_PERSON, "The person who requested an exemption cannot decide it.")
        if actor.pk == exemption.user_id:
            raise SurveillanceError(E.OWN_ACCOUNT, "Staff cannot decide their own account's exemption.")
        exemption.status, exemption.decided_at = to_status, timezone.now()
        if to_status == MarketMakerExemption.Status.APPROVED:
            exemption.approved_by = actor
        else:
            exemption.rejected_by = actor
        exemption.save(update_fields=["status", "approved_by", "rejected_by", "decided_at"])
        _mm_audit(exemption=exemption, actor=actor, step=to_status, reason=reason)
    return exemption


def mm_exemption_approve(*, exemption_id: int, actor, reason: str = "") -> MarketMakerExemption:
    """Second person: the registration takes effect (from ``valid_from``)."""
    return _mm_decide(exemption_id=exemption_id, actor=actor, to_status=MarketMakerExemption.Status.APPROVED, reason=reason)


def mm_exemption_reject(*, exemption_id: int, actor, reason: str) -> MarketMakerExemption:
    if not reason.strip():
        raise SurveillanceError(E.REASON_REQUIRED, "A reason is required to reject.")
    return _mm_decide(exemption_id=exemption_id, actor=actor, to_status=MarketMakerExemption.Status.REJECTED, reason=reason)


def mm_exemption_revoke(*, exemption_id: int, actor, reason: str) -> MarketMakerExemption:
    """End an approved registration now (one person may always tighten surveillance)."""
    if not reason.strip():
        raise SurveillanceError(E.REASON_REQUIRED, "A reason is required to revoke.")
    with transaction.atomic():
        exemption = MarketMakerExemption.objects.select_for_update().get(pk=exemption_id)
        if exemption.status != MarketMakerExemption.Status.APPROVED:
            raise SurveillanceError(E.NOT_APPROVED, f"This exemption is {exemption.status}.", status_now=exemption.status)
        now = timezone.now()
        exemption.status, exemption.revoked_by, exemption.revoked_at = MarketMakerExemption.Status.REVOKED, actor, now
        exemption.save(update_fields=["status", "revoked_by", "revoked_at"])
        _mm_audit(exemption=exemption, actor=actor, step="revoked", reason=reason)
    return exemption
