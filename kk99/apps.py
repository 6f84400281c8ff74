from django.apps import AppConfig


class Kk99Config(AppConfig):
    name = "kk99"
    verbose_name = "KK99 project"
