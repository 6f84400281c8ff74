"""Settings of the HTTP benchmark's server (bench/http_api.py): production-like
(DEBUG off, quiet logs), with the per-IP request-weight limit lifted — the load generator is
one IP sending far more than Binance's 6000 weight a minute."""
from kk99.settings.base import *  # noqa: F401,F403
from kk99.settings.base import KK99, LOGGING

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
KK99 = {**KK99, "BINANCE_WEIGHT_PER_MINUTE": 10**12, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 0, "BINANCE_CANCEL_WAIT_SECONDS": 0}
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}
