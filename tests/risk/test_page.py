"""The user's Risk page: limits, usage, VaR, and the P&L histogram with its VaR line, served
under the strict CSP (no inline script or style)."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from risk.charts import pnl_histogram
from risk.models import RiskLimit
from tests.api.factories import write_trade

pytestmark = pytest.mark.django_db


def test_the_histogram_puts_every_observation_in_a_bar_and_marks_the_tail():
    pnl = [-10.0, -5.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 9.0]
    chart = pnl_histogram(pnl, var=5.0, bins=19)
    assert sum(b.count for b in chart.bars) == len(pnl)
    assert [b.count for b in chart.bars if b.in_tail] == [1, 0, 0, 0, 0]  # bars up to −5: only −10 (−5 sits on the edge)
    assert chart.bars[0].low == -10.0 and chart.bars[-1].high == pytest.approx(9.0)
    assert 20 < chart.var_x < chart.width - 20
    assert pnl_histogram([1.0], var=None) is None


def test_the_risk_page_shows_limits_usage_and_the_chart_without_inline_code(client, alice, market):
    user = alice[0]
    RiskLimit.objects.create(user=user, max_open_orders=17)
    today = timezone.now().astimezone(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    for i, price in enumerate(["100", "104", "97", "101", "99", "103", "95", "100"]):
        write_trade(market, price=price, qty="0.01", at=today - dt.timedelta(days=8 - i))
    client.force_login(user)
    response = client.get("/risk/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Open orders on all markets</th><td>17<" in html
    assert 'id="risk-chart"' in html and 'class="var-line"' in html
    assert html.count('<rect class="bar') == 30
    page = html.split("<main", 1)[1]
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and " style=" not in page and "<style" not in page
    assert "Content-Security-Policy" in response.headers


def test_the_risk_page_needs_a_login(client):
    response = client.get("/risk/")
    assert response.status_code == 302 and "login" in response["Location"]
