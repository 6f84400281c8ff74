"""Run the matching engine inside the web server process (the embedded default).

With the in-memory channel layer, an event published in one process never reaches another,
so the engine must live in the process that holds the WebSocket connections. It must also
publish *through the server's event loop*: the in-memory layer's queues are asyncio objects
of that loop, and waking them from a plain thread's private loop (a daemon thread running
the engine loop) is not thread-safe — deliveries stall until
something else wakes the loop.

So :class:`EmbeddedEngineApp` wraps the ASGI application and, on the first connection,
starts ``EngineRunner.run`` via ``sync_to_async(thread_sensitive=False)`` from the server's
loop. Inside that worker thread, ``async_to_sync`` (used by ``kk99.publish``) schedules each
send on the server's loop — exactly where the layer's queues live.

Enabled when ``settings.KK99["EMBEDDED_ENGINE"]`` is true, or — by default (``"auto"``) —
when the channel layer is the in-memory one. With Redis, run ``manage.py run_engine``
separately (hot standby, several processes) instead.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

from asgiref.sync import sync_to_async
from django.conf import settings

from kk99.conf import kk99_setting

logger = logging.getLogger(__name__)
RESTART_DELAY_SECONDS = 1.0


def embedded_engine_wanted() -> bool:
    value = kk99_setting("EMBEDDED_ENGINE")  # base.py reads KK99_EMBEDDED_ENGINE, default "auto"
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "auto":
            backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
            return backend.endswith("InMemoryChannelLayer")
        return lowered in {"1", "true", "yes", "on"}
    return bool(value)


class _Engine:
    def __init__(self) -> None:
        self.runner = None
        self.task: asyncio.Future | None = None
        self.stopping = False

    def run_forever(self) -> None:
        """Worker-thread body: the runner, restarted after a crash (never after a stop)."""
        from django.db import connection

        from trading.engine.runner import EngineRunner

        while not self.stopping:
            self.runner = EngineRunner(owner=f"embedded:{os.getpid()}")
            try:
                code = self.runner.run()
                if self.stopping:
                    return
                logger.error("embedded engine stopped (exit %s); restarting", code)
            except Exception:  # keep the demo alive; the runner rebuilds from the database
                logger.exception("embedded engine crashed; restarting")
            finally:
                connection.close()
            time.sleep(RESTART_DELAY_SECONDS)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(sync_to_async(self.run_forever, thread_sensitive=False)())
        # The engine runs in an executor (non-daemon) thread, which the interpreter joins at
        # exit before ``atexit`` handlers run: without this, Ctrl-C / SIGTERM would stop the
        # server but leave the process waiting on the engine for ever. ``_register_atexit``
        # callbacks run first (threading's own hook, also used by concurrent.futures).
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            register(self.stop)
        logger.info("embedded matching engine started in process %s", os.getpid())

    def stop(self) -> None:
        self.stopping = True
        if self.runner is not None:
            self.runner.stopping.set()


_engine: _Engine | None = None


def embedded_engine_start() -> _Engine | None:
    """Start the engine in this process (from inside the server's event loop) once."""
    global _engine
    if _engine is None:
        _engine = _Engine()
        _engine.start()
    return _engine


class EmbeddedEngineApp:
    """ASGI middleware: starts the embedded engine on the first scope (any protocol)."""

    def __init__(self, app, *, enabled: bool | None = None) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope, receive, send):
        if _engine is None and (self.enabled if self.enabled is not None else embedded_engine_wanted()):
            embedded_engine_start()
        return await self.app(scope, receive, send)


def get_application():
    """``kk99.asgi.application``, which is already wrapped in :class:`EmbeddedEngineApp`."""
    from kk99.asgi import application

    return application
