from django.urls import path

from wallets.chains import views

app_name = "chains"
urlpatterns = [
    path("deposit/", views.deposit, name="deposit"),
    path("deposit/list/", views.deposit_list, name="deposit_list"),
    path("withdraw/", views.withdraw, name="withdraw"),
]
