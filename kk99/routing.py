"""WebSocket routes of every app, gathered in one place (served by kk99.asgi).

Browser streams live under ``/ws/ui/``; everything else under ``/ws/`` is a Binance stream name
(``/ws/btcusdt@trade``, several joined by ``/``); ``/stream?streams=a/b`` is the combined form
and ``/ws-api/v3`` the WebSocket API (user data). See docs/realtime.md."""
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path, re_path

from trading.streams import consumers

# Browser streams authenticate with the session cookie, so they must come from our own pages
# (cross-site WebSocket hijacking). Bot streams are public or signature-authenticated and
# bots send no Origin: they are not origin-checked.
websocket_urlpatterns: list = [
    path("ws/ui/markets/", AllowedHostsOriginValidator(consumers.MarketsUiConsumer.as_asgi())),
    re_path(r"^ws/ui/(?P<symbol>[A-Za-z0-9]{2,32})/$", AllowedHostsOriginValidator(consumers.MarketUiConsumer.as_asgi())),
    path("ws-api/v3", consumers.WsApiConsumer.as_asgi()),
    re_path(r"^stream/?$", consumers.BinanceStreamConsumer.as_asgi(), {"combined": True}),
    re_path(r"^ws/(?P<listen_key>[A-Za-z0-9]{60})$", consumers.ListenKeyStreamConsumer.as_asgi()),
    re_path(r"^ws/?(?P<streams>[^?]*)$", consumers.BinanceStreamConsumer.as_asgi()),
]
