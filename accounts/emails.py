"""Outgoing account emails. Bodies are plain-text templates (``templates/accounts/emails``),
rendered by the template engine; links are absolute when a request is known."""
from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.http import HttpRequest
from django.template.loader import render_to_string


def absolute_url(request: HttpRequest | None, path: str) -> str:
    return request.build_absolute_uri(path) if request is not None else path


def email_send(*, to: str, subject: str, template: str, context: dict) -> None:
    body = render_to_string(f"accounts/emails/{template}.txt", context)
    send_mail(f"[KK99] {subject}", body, settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)
