from django.urls import path

from margin import apis

app_name = "margin-api"

urlpatterns = [
    path("margin/account/", apis.MarginAccountApi.as_view(), name="account"),
    path("margin/transfers/", apis.MarginTransferApi.as_view(), name="transfer"),
    path("margin/borrow/", apis.MarginBorrowApi.as_view(), name="borrow"),
    path("margin/repay/", apis.MarginRepayApi.as_view(), name="repay"),
    path("margin/orders/", apis.MarginOrderApi.as_view(), name="orders"),
    path("margin/orders/<int:order_id>/", apis.MarginOrderCancelApi.as_view(), name="order-cancel"),
    path("margin/interest/", apis.MarginInterestApi.as_view(), name="interest"),
]
