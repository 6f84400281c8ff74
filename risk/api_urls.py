from django.urls import path

from risk import apis

urlpatterns = [
    path("risk/summary/", apis.RiskSummaryApi.as_view(), name="risk-summary"),
    path("risk/summary", apis.RiskSummaryApi.as_view()),
    path("risk/kill-switch/", apis.KillSwitchApi.as_view(), name="risk-kill-switch"),
    path("risk/kill-switch", apis.KillSwitchApi.as_view()),
    path("markets/<str:symbol>/status/", apis.MarketStatusApi.as_view(), name="market-status"),
    path("markets/<str:symbol>/status", apis.MarketStatusApi.as_view()),
]
