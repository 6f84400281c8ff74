"""Settings of the order-latency benchmark's servers (bench/order_latency.py): the HTTP
benchmark's production-like settings, with RESULT/FULL answers waiting for the engine."""
from bench.http_settings import *  # noqa: F403 — settings layer on the base module by design
from bench.http_settings import KK99

KK99 = {**KK99, "BINANCE_ORDER_RESULT_WAIT_SECONDS": 5.0, "EMBEDDED_ENGINE": "false"}
