from django.apps import AppConfig


class TradingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "trading"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .services import market_cache_signals_connect

        market_cache_signals_connect()
