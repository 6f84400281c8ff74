"""ASGI entry point: HTTP through Django, WebSockets through Channels' routing.

Browser WebSocket routes check their Origin themselves (kk99/routing.py); bot streams
(Binance-compatible) send no Origin and must not be refused for it. In the embedded default
(in-memory channel layer) the matching engine runs inside this process, started from the
server's event loop (trading/streams/embedded.py).

Without DJANGO_SETTINGS_MODULE this uses the development settings, which carry no published
secret (a random SECRET_KEY per checkout, var/secret_key) and run with DEBUG off unless
KK99_DEBUG=1. Production sets DJANGO_SETTINGS_MODULE=kk99.settings.production, which refuses
to start on an unsafe configuration (docs/operations.md, "Fail-closed production settings")."""
import os

from django.core.asgi import get_asgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kk99.settings.dev")
django_asgi_app = get_asgi_application()
# The URL conf, and with it every view module, is imported now, as the worker starts, not by
# the first request the worker serves (which answered that much later).
get_resolver().url_patterns  # noqa: B018 — the cached property imports the URL conf

from channels.auth import AuthMiddlewareStack  # noqa: E402 — imported after django.setup() (get_asgi_application) so models are ready
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 — imported after django.setup() (get_asgi_application) so models are ready

from kk99.routing import websocket_urlpatterns  # noqa: E402 — imported after django.setup() (get_asgi_application) so models are ready
from trading.streams.embedded import EmbeddedEngineApp  # noqa: E402 — imported after django.setup() (get_asgi_application) so models are ready

application = EmbeddedEngineApp(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
        }
    )
)
