"""The user's Risk page: limits in force and their use, the kill switch, the latest VaR/ES,
and the distribution of today's holdings' historical P&L with the 1-day 99 % VaR line."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from kk99.conf import kk99_setting
from risk import portfolio, selectors
from risk.charts import pnl_histogram

CHART_CONFIDENCE = Decimal("0.99")


@login_required
def risk_page(request: HttpRequest) -> HttpResponse:
    user = request.user
    as_of = timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)
    s = portfolio.scenarios(holdings=portfolio.holdings_for_user(user=user), as_of=as_of, days=int(kk99_setting("RISK_VAR_LOOKBACK_DAYS")))
    now_figures = portfolio.var_es(s=s, confidence=CHART_CONFIDENCE)
    chart = pnl_histogram(s.pnl, var=float(now_figures.var_usdt) if s.pnl else None)
    figures = selectors.risk_figures_latest(user=user)
    return render(request, "risk/risk.html", {
        "limits": (limits := selectors.limits_for(user=user, market=None)).as_dict(),
        "limit_rows": limits.labelled(),
        "usage": selectors.risk_usage(user=user),
        "kill_switch": next(iter(selectors.kill_switches_active(user=user)), None),
        "figures": figures,
        "as_of": figures[0].as_of if figures else None,
        "live": now_figures,
        "chart": chart,
        "confidence_pct": CHART_CONFIDENCE * 100,
    })
