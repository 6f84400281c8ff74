"""Real-time streams: Channels consumers (routers only) fed from the engine's published events.

* :mod:`.book` — a market's top of book kept from a snapshot plus sequenced depth diffs;
* :mod:`.feed` — one :class:`~.feed.MarketFeed` per market per server process: it is the only
  member of the market's channel-layer group in that process, checks depth sequence numbers,
  coalesces, and fans events out to the local connections (slow ones are dropped);
* :mod:`.binance` — Binance-compatible stream names and payloads (pure functions);
* :mod:`.stats` — 24h tickers and candles read from trades (chart history, kline state);
* :mod:`.consumers` — the browser stream (htmx out-of-band fragments), the Binance market
  streams (``/ws/<stream>``, ``/stream?streams=``) and the WebSocket API (``/ws-api/v3``);
* :mod:`.embedded` — the ASGI wrapper that runs the matching engine inside the web process
  when the channel layer is in-memory (the embedded default).

See docs/realtime.md.
"""
