from django.urls import path

from wallets.chains import views

app_name = "chains"
urlpatterns = [
    path("deposit/", views.deposit, name="deposit"),
    path("deposit/list/", views.deposit_list, name="deposit_list"),
    path("withdraw/", views.withdraw, name="withdraw"),
    path("withdraw/addresses/", views.addresses, name="addresses"),
    path("withdraw/addresses/<int:entry_id>/remove/", views.address_remove, name="address_remove"),
    path("withdraw/addresses/whitelist/", views.address_whitelist, name="address_whitelist"),
    path("withdraw/addresses/confirm/<str:token>/", views.address_confirm, name="address_confirm"),
]
