"""The Binance-compatible REST API (``/api/v3/``).

Plain Django views — no DRF, no session/JWT authentication, no CSRF — so the per-request cost
stays low and the wire format is exactly Binance's: form-encoded or query parameters in,
JSON with string decimals and millisecond times out, errors as ``{"code", "msg"}``.

* :mod:`.errors` — :class:`BinanceError` and the mapping from KK99 error codes;
* :mod:`.params` — parameter parsing with Binance's error codes;
* :mod:`.limits` — request weight per IP per minute (``X-MBX-USED-WEIGHT-1M``, 429/418);
* :mod:`.formats` — orders, fills, trades and symbols in Binance's shapes;
* :mod:`.views` / :mod:`.urls` — the endpoints.

docs/api.md lists what is supported and where KK99 differs.
"""
