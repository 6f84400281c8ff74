from django.apps import AppConfig


class QuantConfig(AppConfig):
    """The quant studio: indicators, strategies, backtests (vectorised and through the real
    C book), the Strategies page and the strategy bot. See docs/quant.md."""

    name = "quant"
    default_auto_field = "django.db.models.BigAutoField"
