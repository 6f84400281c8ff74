from django.apps import AppConfig


class TradingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "trading"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_migrate, post_save

        from . import checks  # noqa: F401 — importing registers the system checks
        from .models import Market
        from .selectors import market_cache_clear

        # A saved or deleted market must not be served from order placement's market cache.
        post_save.connect(market_cache_clear, sender=Market, dispatch_uid="trading.market_cache.save")
        post_delete.connect(market_cache_clear, sender=Market, dispatch_uid="trading.market_cache.delete")
        post_migrate.connect(market_cache_clear, dispatch_uid="trading.market_cache.migrate")
