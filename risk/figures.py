"""The nightly VaR/ES figures (a service: it writes :class:`~risk.models.RiskFigure`).

:func:`risk_figures_store` computes, for ``as_of`` (a closed UTC day), every account's and the
exchange's VaR/ES for each horizon and confidence of ``settings.KK99`` (``RISK_VAR_HORIZONS``,
``RISK_VAR_CONFIDENCES``) over ``RISK_VAR_LOOKBACK_DAYS`` daily closes, and upserts them in one
transaction — so re-running a night replaces its figures instead of doubling them."""
from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from kk99.conf import kk99_setting
from risk import portfolio
from risk.models import RiskFigure


def _rows(*, user_id: int | None, s: portfolio.Scenarios, as_of: dt.date) -> list[RiskFigure]:
    rows = []
    for horizon in kk99_setting("RISK_VAR_HORIZONS"):
        for confidence in kk99_setting("RISK_VAR_CONFIDENCES"):
            n = portfolio.var_es(s=s, confidence=confidence, horizon_days=horizon)
            rows.append(RiskFigure(
                as_of=as_of, user_id=user_id, horizon_days=horizon, confidence=confidence,
                exposure_usdt=n.exposure_usdt, var_usdt=n.var_usdt, es_usdt=n.es_usdt, method="historical",
            ))
    return rows


def risk_figures_store(*, as_of: dt.date | None = None) -> int:
    """Compute and store the night's figures; returns how many rows were written."""
    as_of = as_of or (timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1))
    days = int(kk99_setting("RISK_VAR_LOOKBACK_DAYS"))
    rows = _rows(user_id=None, s=portfolio.scenarios(holdings=portfolio.holdings_exchange(), as_of=as_of, days=days), as_of=as_of)
    for user_id, holdings in sorted(portfolio.holdings_by_user().items()):
        rows += _rows(user_id=user_id, s=portfolio.scenarios(holdings=holdings, as_of=as_of, days=days), as_of=as_of)
    with transaction.atomic():
        RiskFigure.objects.filter(as_of=as_of).delete()
        RiskFigure.objects.bulk_create(rows)
    return len(rows)
