from django.urls import path

from margin import views

app_name = "margin"
urlpatterns = [
    path("", views.margin_page, name="page"),
]
