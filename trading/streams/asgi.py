"""ASGI entry point with the embedded engine: ``daphne trading.streams.asgi:application``.

Until ``kk99/asgi.py`` wraps its application in
:class:`trading.streams.embedded.EmbeddedEngineApp` itself, the demo and the browser tests
serve this module."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.dev")

from trading.streams.embedded import get_application

application = get_application()
