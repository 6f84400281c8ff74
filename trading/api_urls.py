from django.urls import path

from trading import apis

app_name = "trading-api"

urlpatterns = [
    path("markets/", apis.MarketListApi.as_view(), name="market-list"),
    path("markets/<str:symbol>/", apis.MarketDetailApi.as_view(), name="market-detail"),
    path("orders/", apis.OrderListCreateApi.as_view(), name="order-list"),
    path("orders/history/", apis.OrderHistoryApi.as_view(), name="order-history"),
    path("orders/cancel-all/", apis.OrderCancelAllApi.as_view(), name="order-cancel-all"),
    path("orders/<int:order_id>/", apis.OrderDetailApi.as_view(), name="order-detail"),
    path("fills/", apis.FillListApi.as_view(), name="fill-list"),
    path("fee-preference/", apis.FeePreferenceApi.as_view(), name="fee-preference"),
]
