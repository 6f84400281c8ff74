from django.apps import AppConfig
from django.core import checks


class MarketdataConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "marketdata"

    def ready(self) -> None:
        from marketdata.checks import check_timescale_setup

        checks.register(check_timescale_setup, checks.Tags.database)
