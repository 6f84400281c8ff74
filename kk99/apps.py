from django.apps import AppConfig


class Kk99Config(AppConfig):
    name = "kk99"
    verbose_name = "KK99 project"

    def ready(self) -> None:
        from kk99 import checks  # noqa: F401  (registers the kk99.E0xx deployment checks)
