"""Browser routes of risk (namespace ``risk``)."""
from django.urls import path

from risk import views

app_name = "risk"
urlpatterns = [path("risk/", views.risk_page, name="page")]
