from django.urls import path

from wallets import apis

app_name = "wallets-api"
urlpatterns = [
    path("balances/", apis.BalancesApi.as_view(), name="balances"),
    path("journal/", apis.JournalApi.as_view(), name="journal"),
]
