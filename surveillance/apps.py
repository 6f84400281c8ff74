from django.apps import AppConfig


class SurveillanceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "surveillance"
    verbose_name = "Market surveillance"
