from django.apps import AppConfig


class MarginConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "margin"
    verbose_name = "Margin trading"
