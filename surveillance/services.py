"""Surveillance writes: running the detectors, recording alerts, the case workflow, thresholds.

One business action = one transaction with its audit rows (accounts.audit.audit_record)."""
from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from accounts.audit import audit_record
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
)
from surveillance.selectors import (
    linked_pairs,
    order_records,
    threshold_params,
    trade_records,
)
from trading.models import Market, Order, Trade

AUDIT_CASE = "surveillance_case"
AUDIT_THRESHOLD = "surveillance_threshold"
AUDIT_FREEZE = "surveillance_freeze"


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
    for name in detectors or Detector.values:
        p = threshold_params(detector=name, market_id=market.pk)
        since = first_new - timedelta(seconds=d.LOOKBACK_S[name](p))
        trades = trade_records(market_id=market.pk, since=since, upto_pk=last_trade)
        if name == "wash":
            findings += d.detect_wash(trades, p=p, linked=linked_pairs(user_ids={u for t in trades for u in (t.buyer, t.seller)}), exempt=_exempt_makers())
        elif name == "spoofing":
            findings += d.detect_spoofing(order_records(market_id=market.pk, since=since), trades, p=p, exempt=_exempt_makers())
        elif name == "pump":
            findings += [f for f in d.detect_pump(trades, p=p) if f.window_end > first_new]
        elif name == "marking_close":
            closes = d.closes_between(first_new, now, p["close_interval_s"], _session_closes(market, first_new, now))
            findings += d.detect_marking_close(trades, p=p, closes=closes)
        elif name == "cancel_ratio":
            findings += d.detect_cancel_ratio(order_records(market_id=market.pk, since=since), trades, p=p, exempt=_exempt_makers())
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


def _exempt_makers() -> set[int]:
    from django.conf import settings

    return set(settings.KK99.get("SURVEILLANCE_EXEMPT_MAKERS", []))


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


def links_infer() -> int:
    """Links from shared withdrawal addresses and shared login IPs (the audit log). Returns the
    number of links added."""
    from accounts.audit import AuditLog
    from wallets.chains.models import Withdrawal

    added = 0
    for field, source, model, extra in (
        ("address", AccountLink.Source.WITHDRAWAL_ADDRESS, Withdrawal, {}),
        ("ip", AccountLink.Source.LOGIN_IP, AuditLog, {"action": "login", "ip__isnull": False}),
    ):
        user_field = "user_id" if model is Withdrawal else "target_user_id"
        shared = model.objects.filter(**extra).values(field).annotate(n=Count(user_field, distinct=True)).filter(n__gt=1).values_list(field, flat=True)
        for value in shared[:1000]:
            users = sorted(set(model.objects.filter(**{field: value}, **extra).values_list(user_field, flat=True)) - {None})
            for i, a in enumerate(users[:20]):
                for b in users[i + 1:20]:
                    _, created = AccountLink.objects.get_or_create(user_a_id=a, user_b_id=b, source=source, defaults={"evidence": str(value)[:200]})
                    added += created
    return added


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
        audit_record(action=AUDIT_CASE, actor=actor, target=f"case:{locked.pk}", details={"from": locked.state, "to": to_state, "reason": reason[:500]})
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
        audit_record(action=AUDIT_FREEZE, actor=actor, target=f"case:{case.pk}", details={"frozen": frozen, "reason": reason[:300]})
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
        audit_record(action=AUDIT_THRESHOLD, actor=actor, target=f"threshold:{detector}:{market.symbol if market else '*'}", details={"old": old, "new": row.params, "reason": reason[:300]})
    return row
