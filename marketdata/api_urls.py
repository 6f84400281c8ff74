from django.urls import path

from marketdata import apis

app_name = "marketdata-api"

urlpatterns = [
    path("markets/<str:symbol>/depth/", apis.DepthApi.as_view(), name="depth"),
    path("markets/<str:symbol>/trades/", apis.TradeListApi.as_view(), name="trades"),
    path("markets/<str:symbol>/candles/", apis.CandleListApi.as_view(), name="candles"),
    path("markets/<str:symbol>/ticker/", apis.TickerApi.as_view(), name="ticker"),
    path("markets/<str:symbol>/averages/", apis.AveragesApi.as_view(), name="averages"),
    path("tickers/", apis.TickerListApi.as_view(), name="tickers"),
]
