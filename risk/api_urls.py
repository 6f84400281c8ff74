"""Risk's REST v1 routes (the trailing slash is optional: the issue names them without it)."""
from django.urls import re_path

from risk import apis

urlpatterns = [
    re_path(r"^risk/summary/?$", apis.RiskSummaryApi.as_view(), name="risk-summary"),
    re_path(r"^risk/kill-switch/?$", apis.KillSwitchApi.as_view(), name="risk-kill-switch"),
    re_path(r"^markets/(?P<symbol>[^/]+)/status/?$", apis.MarketStatusApi.as_view(), name="market-status"),
]
