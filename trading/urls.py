"""Browser routes of trading (namespace ``trading``), mounted at the site root."""
from django.urls import path

from trading import views

app_name = "trading"
urlpatterns = [
    path("markets/", views.markets, name="markets"),
    path("trade/<str:symbol>/", views.trade, name="trade"),
    path("trade/<str:symbol>/klines/", views.klines, name="klines"),
    path("trade/<str:symbol>/orders/", views.order_create, name="order_create"),
    path("trade/<str:symbol>/orders/cancel-all/", views.order_cancel_all, name="order_cancel_all"),
    path("orders/<int:order_id>/cancel/", views.order_cancel, name="order_cancel"),
    path("portfolio/", views.portfolio, name="portfolio"),
    path("orders/", views.orders, name="orders"),
    path("fills/", views.fills, name="fills"),
]
