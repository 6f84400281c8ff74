from django.apps import AppConfig


class MarginConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "margin"
    verbose_name = "Margin trading"

    def ready(self) -> None:
        from margin.liquidation import engine_batch_hook  # apps are loaded now
        from trading.engine.signals import batch_committed

        batch_committed.connect(engine_batch_hook, dispatch_uid="margin-liquidation-hook")
        from margin import liquidation_admin, liquidation_tasks  # noqa: F401 — registers the admin and the task
