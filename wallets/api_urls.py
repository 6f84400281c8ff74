from django.urls import path

from wallets import apis
from wallets.chains import apis as chains_apis

app_name = "wallets-api"
urlpatterns = [
    path("balances/", apis.BalancesApi.as_view(), name="balances"),
    path("journal/", apis.JournalApi.as_view(), name="journal"),
    path("withdrawals/", chains_apis.WithdrawalsApi.as_view(), name="withdrawals"),
]
