"""Browser routes of the quant studio (namespace ``quant``), mounted at /strategies/."""
from django.urls import path

from quant import views

app_name = "quant"
urlpatterns = [
    path("", views.strategies, name="strategies"),
    path("runs/", views.runs, name="runs"),
    path("runs/new/", views.run_create, name="run_create"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/plot.svg", views.run_plot, name="run_plot"),
    path("compare/", views.compare, name="compare"),
    path("compare/plot.svg", views.compare_plot, name="compare_plot"),
]
