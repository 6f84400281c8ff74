"""The demo's mailbox page (``/dev/mailbox/``): the emails the file-based email backend wrote,
newest first, so a new account can open its verification link when no mail server exists.

Only served when ``EMAIL_BACKEND`` is Django's file-based backend (the dev settings' default);
everywhere else the page is a 404. A signed-in user sees the mail addressed to them. A visitor
who is not signed in (a password reset) may type an address only when ``DEBUG`` is on — a
local development machine —, never on a demo served with ``DEBUG`` off, where that would let
anyone read anyone's reset link."""
from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
SEPARATOR = "\n" + "-" * 79 + "\n"  # what the file-based backend writes after each message
MAX_MESSAGES = 50
LINK = re.compile(r"https?://\S+")


def mailbox_enabled() -> bool:
    return settings.EMAIL_BACKEND == FILE_BACKEND and bool(getattr(settings, "EMAIL_FILE_PATH", None))


def mailbox_messages(*, to: str) -> list[dict]:
    """Messages addressed to ``to`` (case-insensitive), newest first."""
    folder = Path(settings.EMAIL_FILE_PATH)
    if not to or not folder.is_dir():
        return []
    out: list[dict] = []
    for path in sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
        for raw in reversed(path.read_text(errors="replace").split(SEPARATOR)):
            if not raw.strip():
                continue
            msg = email.message_from_string(raw, policy=email.policy.default)
            recipients = [a.strip().lower() for a in str(msg.get("To", "")).split(",")]
            if to.lower() not in recipients:
                continue
            part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
            body = part.get_content() if part is not None else ""
            out.append({"subject": str(msg.get("Subject", "")), "date": str(msg.get("Date", "")), "to": str(msg.get("To", "")), "body": body, "links": LINK.findall(body)})
            if len(out) >= MAX_MESSAGES:
                return out
    return out


@never_cache
@require_GET
def mailbox(request: HttpRequest) -> HttpResponse:
    if not mailbox_enabled():
        raise Http404("The demo mailbox is off: a real email backend is configured.")
    anyone = settings.DEBUG and not request.user.is_authenticated
    to = request.user.email if request.user.is_authenticated else ((request.GET.get("to") or "").strip()[:254] if anyone else "")
    return render(request, "dev/mailbox.html", {"to": to, "mail": mailbox_messages(to=to), "ask_address": anyone})
