"""Settings of the HTTP benchmark's server (bench/http_api.py): production-like
(DEBUG off, quiet logs), with the per-IP request-weight limit lifted — the load generator is
one IP sending far more than Binance's 6000 weight a minute — and the per-account order rate
and open-order limits lifted (each bench user sends far more than 100 orders per 10 s; the
checks still run, counted in Redis, only nothing is refused)."""
from kk99.settings.base import *  # noqa: F403 — settings layer on the base module by design
from kk99.settings.base import KK99, LOGGING

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
KK99 = {**KK99, "BINANCE_WEIGHT_PER_MINUTE": 10**12, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 0, "BINANCE_CANCEL_WAIT_SECONDS": 0}
KK99["RISK_DEFAULTS"] = {**KK99["RISK_DEFAULTS"], "orders_per_10s": 10**9, "orders_per_day": 10**9, "max_open_orders_per_market": 10**9, "max_open_orders": 10**9}
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}
