"""``/api/v3/`` — mounted by kk99/urls.py. Paths are Binance's exactly (no trailing slash)."""
from django.urls import path

from trading.binance import views

app_name = "binance"

urlpatterns = [
    path("ping", views.ping, name="ping"),
    path("time", views.server_time, name="time"),
    path("exchangeInfo", views.exchange_info, name="exchange-info"),
    path("depth", views.depth, name="depth"),
    path("trades", views.trades, name="trades"),
    path("historicalTrades", views.historical_trades, name="historical-trades"),
    path("aggTrades", views.agg_trades, name="agg-trades"),
    path("klines", views.klines, name="klines"),
    path("uiKlines", views.klines, name="ui-klines"),
    path("ticker/24hr", views.ticker_24hr, name="ticker-24hr"),
    path("ticker/price", views.ticker_price, name="ticker-price"),
    path("ticker/bookTicker", views.book_ticker, name="book-ticker"),
    path("ticker", views.ticker, name="ticker"),
    path("avgPrice", views.avg_price, name="avg-price"),
    path("order", views.order, name="order"),
    path("order/test", views.order_test, name="order-test"),
    path("openOrders", views.open_orders, name="open-orders"),
    path("allOrders", views.all_orders, name="all-orders"),
    path("myTrades", views.my_trades, name="my-trades"),
    path("myPreventedMatches", views.my_prevented_matches, name="my-prevented-matches"),
    path("account", views.account, name="account"),
    # Not Binance: a signed no-op, the framework ceiling of the HTTP benchmark.
    path("kk99/noop", views.noop, name="noop"),
]
