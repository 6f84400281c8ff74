"""Deployment system checks ``kk99.E0xx``: the same rules production settings refuse to start
on (kk99/settings/safety.py), reported by ``manage.py check --deploy`` for any settings module.
A setting that would be unsafe with real money is an Error, never a Warning: a warning gets
deployed."""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

from kk99.settings.safety import deployment_problems


def _get(name: str):
    return getattr(settings, name, None)


@register(Tags.security, deploy=True)
def check_deployment_safety(app_configs, **kwargs) -> list[Error]:
    return [Error(p.msg, hint=p.hint, id=p.id) for p in deployment_problems(_get)]
