"""Reads for surveillance: effective thresholds, the records detectors consume, links, charts."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Q

from surveillance.detectors import DEFAULTS, OrderRec, TradeRec
from surveillance.models import AccountLink, Alert, DetectorThreshold, MarketMakerExemption
from trading.models import Order, Trade
from trading.stp import trade_group_pairs


def threshold_params(*, detector: str, market_id: int | None) -> dict:
    """Defaults, then the all-markets override, then the market's own override."""
    params = dict(DEFAULTS[detector])
    rows = {t.market_id: t.params for t in DetectorThreshold.objects.filter(detector=detector).filter(Q(market__isnull=True) | Q(market_id=market_id))}
    for key in (None, market_id):
        params.update({k: v for k, v in (rows.get(key) or {}).items() if k in params})
    return params


def trade_records(*, market_id: int, since: datetime | None = None, after_pk: int = 0, upto_pk: int | None = None) -> list[TradeRec]:
    qs = Trade.objects.filter(market_id=market_id, pk__gt=after_pk)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if upto_pk is not None:
        qs = qs.filter(pk__lte=upto_pk)
    rows = qs.order_by("pk").values_list("pk", "created_at", "price", "qty", "maker_user_id", "taker_user_id", "is_buyer_maker", "maker_order_id", "taker_order_id")
    out = []
    for pk, ts, price, qty, mu, tu, buyer_maker, mo, to in rows:
        buyer, seller = (mu, tu) if buyer_maker else (tu, mu)
        bo, so = (mo, to) if buyer_maker else (to, mo)
        out.append(TradeRec(pk, ts, price, qty, buyer, seller, not buyer_maker, bo, so))
    return out


def order_records(*, market_id: int, since: datetime) -> list[OrderRec]:
    rows = (
        Order.objects.filter(market_id=market_id, created_at__gte=since)
        .exclude(status__in=(Order.Status.PENDING_NEW, Order.Status.PENDING_TRIGGER))
        .order_by("pk")
        .values_list("pk", "user_id", "side", "price", "quantity", "executed_qty", "prevented_qty", "status", "created_at", "updated_at")
    )
    return [OrderRec(*r) for r in rows]


def exempt_accounts(*, market_id: int, at: datetime) -> set[int]:
    """The one read of the market-maker registry: accounts with an APPROVED exemption valid at
    ``at`` for ``market_id`` (or for every market). Detectors get nothing else."""
    valid = (
        MarketMakerExemption.objects.filter(status=MarketMakerExemption.Status.APPROVED, valid_from__lte=at)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=at))
        .filter(Q(markets__isnull=True) | Q(markets__pk=market_id))
    )
    return set(valid.values_list("user_id", flat=True))


def linked_pairs(*, user_ids: set[int] | None = None) -> dict[tuple[int, int], list[dict]]:
    """Pairs (a < b) of accounts under common control, each with the evidence of every link
    between them: inferred :class:`AccountLink` rows and shared STP trade groups."""
    qs = AccountLink.objects.all()
    if user_ids is not None:
        qs = qs.filter(Q(user_a_id__in=user_ids) | Q(user_b_id__in=user_ids))
    pairs: dict[tuple[int, int], list[dict]] = {}
    for a, b, source, evidence in qs.order_by("user_a_id", "user_b_id", "source").values_list("user_a_id", "user_b_id", "source", "evidence"):
        pairs.setdefault((a, b), []).append({"source": source, "evidence": evidence})
    for pair in sorted(trade_group_pairs(user_ids=user_ids)):
        pairs.setdefault(pair, []).append({"source": AccountLink.Source.TRADE_GROUP.value, "evidence": "members of one STP trade group"})
    return pairs


def alert_chart(*, alert: Alert, width: int = 640, height: int = 160) -> dict:
    """Price and volume of the alert's window (± half a window) as SVG coordinates."""
    span = alert.window_end - alert.window_start
    pad = max(span / 2, span.__class__(minutes=5))
    trades = list(
        Trade.objects.filter(market_id=alert.market_id, created_at__gte=alert.window_start - pad, created_at__lte=alert.window_end + pad)
        .order_by("pk")
        .values_list("created_at", "price", "qty")[:5000]
    )
    if not trades:
        return {"points": "", "bars": [], "width": width, "height": height, "count": 0}
    t0, t1 = trades[0][0], trades[-1][0]
    total = max((t1 - t0).total_seconds(), 1.0)
    lo, hi = min(t[1] for t in trades), max(t[1] for t in trades)
    rng = (hi - lo) or Decimal(1)
    vmax = max(t[2] for t in trades)
    ph = height * 0.7

    def x(ts):
        return round((ts - t0).total_seconds() / total * width, 1)

    points = " ".join(f"{x(ts)},{round(float((hi - p) / rng) * ph, 1)}" for ts, p, _ in trades)
    bars = [{"x": x(ts), "h": round(float(q / vmax) * height * 0.28, 1), "y": round(height - float(q / vmax) * height * 0.28, 1)} for ts, _, q in trades]
    ws, we = max(alert.window_start, t0), min(alert.window_end, t1)
    return {"points": points, "bars": bars, "width": width, "height": height, "count": len(trades), "low": lo, "high": hi,
            "window_x": x(ws), "window_w": max(x(we) - x(ws), 2)}


def case_export_rows(*, case) -> list[dict]:
    rows = []
    for a in case.alerts.order_by("pk"):
        rows.append({
            "case": case.pk, "case_state": case.state, "alert_key": a.alert_key, "detector": a.detector, "market": a.market.symbol,
            "score": str(a.score), "severity": a.severity, "accounts": " ".join(map(str, a.accounts)),
            "window_start": a.window_start.isoformat(), "window_end": a.window_end.isoformat(),
            "trade_ids": " ".join(map(str, a.evidence.get("trade_ids", []))), "order_ids": " ".join(map(str, a.evidence.get("order_ids", []))),
        })
    return rows
