from django.apps import AppConfig


class WalletsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "wallets"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .services import caches_clear

        # A migrated (e.g. flushed test) database must not be served from the per-process
        # account and balance-row caches.
        post_migrate.connect(caches_clear, dispatch_uid="wallets.services.caches_clear")
