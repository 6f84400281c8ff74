"""``/sapi/v1/`` — Binance's margin (and universal transfer) endpoints: margin.sapi."""
from django.urls import path

from margin import sapi

app_name = "sapi"

urlpatterns = [
    path("margin/borrow-repay", sapi.borrow_repay, name="borrow-repay"),
    path("margin/loan", sapi.loan, name="loan"),
    path("margin/repay", sapi.repay, name="repay"),
    path("margin/account", sapi.account, name="account"),
    path("margin/isolated/account", sapi.isolated_account, name="isolated-account"),
    path("margin/isolated/transfer", sapi.isolated_transfer, name="isolated-transfer"),
    path("margin/maxBorrowable", sapi.max_borrowable, name="max-borrowable"),
    path("margin/maxTransferable", sapi.max_transferable, name="max-transferable"),
    path("margin/interestHistory", sapi.interest_history, name="interest-history"),
    path("margin/interestRateHistory", sapi.interest_rate_history, name="interest-rate-history"),
    path("margin/crossMarginData", sapi.cross_margin_data, name="cross-margin-data"),
    path("margin/forceLiquidationRec", sapi.force_liquidation_rec, name="force-liquidation-rec"),
    path("margin/order", sapi.order, name="order"),
    path("margin/openOrders", sapi.open_orders, name="open-orders"),
    path("margin/allOrders", sapi.all_orders, name="all-orders"),
    path("margin/myTrades", sapi.my_trades, name="my-trades"),
    path("userDataStream", sapi.user_data_stream, name="user-data-stream"),
    path("userDataStream/isolated", sapi.user_data_stream_isolated, name="user-data-stream-isolated"),
    path("asset/transfer", sapi.universal_transfer, name="universal-transfer"),
]
