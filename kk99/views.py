"""Project-level views: liveness, readiness, the rate-limit answer."""
from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return f"{len(pending)} migrations not applied" if pending else None


def _check_cache() -> str | None:
    cache.set("kk99:readyz", "1", 10)
    return None if cache.get("kk99:readyz") == "1" else "cache did not return what was written"


def _check_channel_layer() -> str | None:
    layer = get_channel_layer()
    if layer is None:
        return "no channel layer configured"
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(channel, {"type": "readyz.ping"})
    message = async_to_sync(layer.receive)(channel)
    return None if message.get("type") == "readyz.ping" else "channel layer round trip failed"


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database reachable with all migrations applied, cache and channel layer
    reachable. 503 names what failed (never a stack trace)."""
    checks = {}
    for name, check in (("database", _check_database), ("cache", _check_cache), ("channel_layer", _check_channel_layer)):
        try:
            problem = check()
        except Exception as exc:  # a readiness probe reports, it does not raise
            logger.warning("readyz %s failed: %s", name, type(exc).__name__)
            problem = f"unreachable ({type(exc).__name__})"
        checks[name] = "ok" if problem is None else problem
    ok = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


def ratelimited(request: HttpRequest, exception: Exception) -> JsonResponse:
    """django-ratelimit's answer for browser forms and plain views: 429 with Retry-After."""
    response = JsonResponse({"error": {"code": "rate_limited", "message": "Too many requests; slow down."}}, status=429)
    response["Retry-After"] = "60"
    return response
