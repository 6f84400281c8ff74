from django.urls import path

from wallets import views

app_name = "wallets"
urlpatterns = [
    path("balances/", views.balances, name="balances"),
    path("journal/", views.journal, name="journal"),
]
