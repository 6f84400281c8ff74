"""KK99's Prometheus metrics: the one registry module every feature adds its metrics to.

Two kinds of metric live here.

* **Instruments** (counters, histograms, gauges) that a process updates as it works: the web
  middleware, the engine loop, Celery's task signals, the WebSocket consumers. Under a
  multi-process server (uvicorn/gunicorn workers, Celery prefork children) set
  ``PROMETHEUS_MULTIPROC_DIR`` to an empty per-host directory: prometheus-client then keeps
  each process's values in memory-mapped files there and ``/metrics`` sums them, so a
  worker that restarts does not reset a counter. Processes that are not behind ``/metrics``
  (an engine on another host, a Celery worker) serve their own with ``KK99_METRICS_PORT``
  (:func:`start_exporter`) — one exporter per process.
* **State** read from PostgreSQL/Redis when ``/metrics`` is scraped (:class:`StateCollector`):
  claim lag, engine epochs and ownership, book depth, chain scanner lag, pending deposits and
  withdrawals, hot wallet vs liabilities, the last ledger audit, Celery queue depth. These are
  facts of the shared database, so any web process reports the same values.

:data:`METRICS` documents every KK99 metric (name → kind, help); ``docs/operations.md`` and the
Grafana/alert tests are checked against it. Add a metric = add an instrument or a collector
family below *and* a row to ``METRICS``.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

# name -> (type, help). Every KK99 metric, instrument or state, is listed here (the docs table).
METRICS: dict[str, tuple[str, str]] = {}


def _doc(name: str, kind: str, help_: str) -> str:
    METRICS[name] = (kind, help_)
    return name


# --- web -----------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    _doc("kk99_http_requests_total", "counter", "HTTP requests answered, by route (URL pattern name), method and status code."),
    "HTTP requests answered.", ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    _doc("kk99_http_request_duration_seconds", "histogram", "Time from request to response, by route and method."),
    "HTTP request latency.", ["route", "method"], buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    _doc("kk99_http_requests_in_flight", "gauge", "Requests being served right now (summed over live workers)."),
    "HTTP requests in flight.", multiprocess_mode="livesum",
)

# --- engine --------------------------------------------------------------------------------
ENGINE_BATCH_SIZE = Histogram(
    _doc("kk99_engine_batch_commands", "histogram", "Commands (new orders, cancels) per engine batch, by market."),
    "Commands per engine batch.", ["market"], buckets=BATCH_BUCKETS,
)
ENGINE_BATCH_LATENCY = Histogram(
    _doc("kk99_engine_batch_duration_seconds", "histogram", "Wall time of one engine batch (claim, match, journal, commit), by market."),
    "Engine batch latency.", ["market"], buckets=LATENCY_BUCKETS,
)
ENGINE_COMMANDS = Counter(
    _doc("kk99_engine_commands_total", "counter", "Commands the engine applied, by market (rate() = orders per second)."),
    "Engine commands applied.", ["market"],
)
ENGINE_TRADES = Counter(
    _doc("kk99_engine_trades_total", "counter", "Trades the engine produced, by market (rate() = trades per second)."),
    "Engine trades.", ["market"],
)
ENGINE_QUARANTINED = Counter(
    _doc("kk99_engine_quarantined_total", "counter", "Commands the engine rejected alone after a failed batch, by market."),
    "Engine commands quarantined.", ["market"],
)
ENGINE_OWNED = Gauge(
    _doc("kk99_engine_owned_markets", "gauge", "1 for each market this engine process owns (holds the advisory lock of)."),
    "Markets owned by this engine process.", ["market"], multiprocess_mode="livemax",
)
ENGINE_TAKEOVERS = Counter(
    _doc("kk99_engine_takeovers_total", "counter", "Times an engine process took a market (start or standby takeover), by market."),
    "Engine market takeovers.", ["market"],
)
ENGINE_FENCED = Counter(
    _doc("kk99_engine_fenced_total", "counter", "Times an engine process found itself fenced (exit status 3)."),
    "Engine fenced exits.",
)
ENGINE_RESTARTS = Counter(
    _doc("kk99_engine_restarts_total", "counter", "Engine restarts by the supervisor (`kk99 engines run`), by exit reason."),
    "Engine restarts by the supervisor.", ["reason"],
)

# --- Celery --------------------------------------------------------------------------------
CELERY_TASKS = Counter(
    _doc("kk99_celery_tasks_total", "counter", "Celery tasks finished, by task name and state (success, failure, retry)."),
    "Celery tasks finished.", ["task", "state"],
)
CELERY_LATENCY = Histogram(
    _doc("kk99_celery_task_duration_seconds", "histogram", "Celery task run time, by task name."),
    "Celery task run time.", ["task"], buckets=LATENCY_BUCKETS,
)

# --- WebSockets ----------------------------------------------------------------------------
WS_CONNECTIONS = Gauge(
    _doc("kk99_ws_connections", "gauge", "Open WebSocket connections (summed over live workers)."),
    "Open WebSocket connections.", multiprocess_mode="livesum",
)
WS_MESSAGES = Counter(
    _doc("kk99_ws_messages_total", "counter", "Messages pushed to WebSocket clients."),
    "WebSocket messages pushed.",
)
WS_DROPS = Counter(
    _doc("kk99_ws_drops_total", "counter", "WebSocket clients disconnected by the server, by reason (slow consumer, error)."),
    "WebSocket clients dropped.", ["reason"],
)

# --- ledger --------------------------------------------------------------------------------
LEDGER_AUDIT_RUNS = Counter(
    _doc("kk99_ledger_audit_runs_total", "counter", "ledger_audit runs in this process, by result (ok, failed)."),
    "ledger_audit runs.", ["result"],
)

# --- state families (StateCollector) -------------------------------------------------------
for _name, _help in {
    "kk99_engine_claim_lag_seconds": "Age of the oldest PENDING_NEW order per market: how far the engine is behind.",
    "kk99_engine_pending_commands": "Orders waiting for the engine (PENDING_NEW) per market.",
    "kk99_engine_epoch": "The fencing epoch of each market (bumps on every takeover).",
    "kk99_engine_owner_up": "1 when some engine session holds the market's advisory lock (PostgreSQL pg_locks).",
    "kk99_engine_last_batch_age_seconds": "Seconds since the market's engine state was last written.",
    "kk99_book_open_orders": "Resting orders per market and side (book depth in orders).",
    "kk99_market_trading": "1 when the market's status is TRADING, per market and status.",
    "kk99_chain_scanner_lag_blocks": "Blocks between the node's head and the deposit scanner's cursor, per chain.",
    "kk99_chain_scanner_age_seconds": "Seconds since the chain's deposit scanner last scanned.",
    "kk99_deposits_pending": "Deposits detected but not yet credited, per chain.",
    "kk99_withdrawals_pending": "Withdrawals not yet final, per status.",
    "kk99_withdrawal_oldest_pending_seconds": "Age of the oldest approved/signed/broadcast withdrawal.",
    "kk99_system_account_balance": "Ledger balance of each exchange account per kind and asset (custody vs liabilities: deposits_clearing is minus what came in).",
    "kk99_user_liabilities": "What users hold per asset (available + locked) from the ledger.",
    "kk99_ledger_audit_ok": "1 when the last ledger_audit was clean, 0 when it found problems.",
    "kk99_ledger_audit_last_run_timestamp_seconds": "Unix time of the last ledger_audit run.",
    "kk99_celery_queue_depth": "Messages waiting in each Celery queue (Redis broker).",
    "kk99_state_scrape_errors": "1 when reading the state for this scrape failed (the state metrics are then missing).",
}.items():
    _doc(_name, "gauge", _help)

LEDGER_AUDIT_CACHE_KEY = "kk99:ops:ledger_audit:last"


def ledger_audit_record(*, ok: bool, problems: int) -> None:
    """Remember the result of a ledger audit (cache, shared by all processes) for /metrics."""
    from django.core.cache import cache

    LEDGER_AUDIT_RUNS.labels(result="ok" if ok else "failed").inc()
    cache.set(LEDGER_AUDIT_CACHE_KEY, {"ok": ok, "problems": problems, "at": time.time()}, timeout=None)


def ledger_audit_last() -> dict | None:
    from django.core.cache import cache

    return cache.get(LEDGER_AUDIT_CACHE_KEY)


class StateCollector(Collector):
    """Reads the shared state (database, broker) at scrape time. Cheap aggregate queries only."""

    def describe(self):  # no eager collect at registration (the database may not be ready)
        return []

    def collect(self):
        families: list[GaugeMetricFamily] = []
        error = 0
        try:
            families = list(_state_families())
        except Exception:  # a scrape must answer even when the database does not
            logger.exception("metrics: reading the state failed")
            error = 1
        yield from families
        g = GaugeMetricFamily("kk99_state_scrape_errors", METRICS["kk99_state_scrape_errors"][1])
        g.add_metric([], error)
        yield g


def _gauge(name: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name][1], labels=labels)


def _state_families() -> Iterator[GaugeMetricFamily]:
    from django.db.models import Count, Min, Sum
    from django.utils import timezone

    from trading.models import EngineState, Market, Order
    from wallets.chains.models import ChainCursor, Deposit, DepositStatus, Withdrawal, WithdrawalStatus
    from wallets.models import Balance

    now = timezone.now()
    markets = dict(Market.objects.values_list("pk", "symbol"))
    statuses = dict(Market.objects.values_list("symbol", "status"))

    lag = _gauge("kk99_engine_claim_lag_seconds", ["market"])
    pending = _gauge("kk99_engine_pending_commands", ["market"])
    oldest = dict(
        Order.objects.filter(status=Order.Status.PENDING_NEW).values("market_id").annotate(m=Min("created_at"), n=Count("id")).values_list("market_id", "m")
    )
    counts = dict(Order.objects.filter(status=Order.Status.PENDING_NEW).values("market_id").annotate(n=Count("id")).values_list("market_id", "n"))
    for pk, symbol in markets.items():
        lag.add_metric([symbol], max(0.0, (now - oldest[pk]).total_seconds()) if pk in oldest else 0.0)
        pending.add_metric([symbol], counts.get(pk, 0))
    yield lag
    yield pending

    epoch = _gauge("kk99_engine_epoch", ["market"])
    age = _gauge("kk99_engine_last_batch_age_seconds", ["market"])
    for market_id, e, updated in EngineState.objects.values_list("market_id", "epoch", "updated_at"):
        if market_id in markets:
            epoch.add_metric([markets[market_id]], e)
            age.add_metric([markets[market_id]], max(0.0, (now - updated).total_seconds()))
    yield epoch
    yield age

    owner = _gauge("kk99_engine_owner_up", ["market"])
    from kk99.ops import engine_lock_holders

    held = engine_lock_holders()
    if held is not None:
        for pk, symbol in markets.items():
            owner.add_metric([symbol], 1 if pk in held else 0)
    yield owner

    depth = _gauge("kk99_book_open_orders", ["market", "side"])
    for market_id, side, n in (
        Order.objects.filter(status__in=(Order.Status.NEW, Order.Status.PARTIALLY_FILLED))
        .values("market_id", "side").annotate(n=Count("id")).values_list("market_id", "side", "n")
    ):
        depth.add_metric([markets.get(market_id, str(market_id)), side], n)
    yield depth

    trading = _gauge("kk99_market_trading", ["market", "status"])
    for symbol, status in statuses.items():
        trading.add_metric([symbol, status], 1 if status == Market.Status.TRADING else 0)
    yield trading

    blocks = _gauge("kk99_chain_scanner_lag_blocks", ["chain"])
    scan_age = _gauge("kk99_chain_scanner_age_seconds", ["chain"])
    for cursor_row in ChainCursor.objects.all():
        blocks.add_metric([cursor_row.chain], cursor_row.lag or 0)
        if cursor_row.last_scan_at is not None:
            scan_age.add_metric([cursor_row.chain], max(0.0, (now - cursor_row.last_scan_at).total_seconds()))
    yield blocks
    yield scan_age

    deposits = _gauge("kk99_deposits_pending", ["chain"])
    for chain, n in (
        Deposit.objects.filter(status__in=(DepositStatus.DETECTED, DepositStatus.CONFIRMING))
        .values("chain").annotate(n=Count("id")).values_list("chain", "n")
    ):
        deposits.add_metric([chain], n)
    yield deposits

    open_w = (WithdrawalStatus.REQUESTED, WithdrawalStatus.PENDING_APPROVAL, WithdrawalStatus.APPROVED, WithdrawalStatus.SIGNED, WithdrawalStatus.BROADCAST, WithdrawalStatus.CONFIRMED)
    withdrawals = _gauge("kk99_withdrawals_pending", ["status"])
    for status, n in Withdrawal.objects.filter(status__in=open_w).values("status").annotate(n=Count("id")).values_list("status", "n"):
        withdrawals.add_metric([status], n)
    yield withdrawals
    stuck = _gauge("kk99_withdrawal_oldest_pending_seconds", [])
    first = Withdrawal.objects.filter(status__in=(WithdrawalStatus.APPROVED, WithdrawalStatus.SIGNED, WithdrawalStatus.BROADCAST)).aggregate(m=Min("created_at"))["m"]
    stuck.add_metric([], max(0.0, (now - first).total_seconds()) if first else 0.0)
    yield stuck

    system = _gauge("kk99_system_account_balance", ["kind", "asset"])
    for kind, symbol, total in (
        Balance.objects.filter(account__system_kind__isnull=False)
        .values("account__system_kind", "asset__symbol").annotate(t=Sum("available") + Sum("locked"))
        .values_list("account__system_kind", "asset__symbol", "t")
    ):
        system.add_metric([kind, symbol], float(total or 0))
    yield system

    liabilities = _gauge("kk99_user_liabilities", ["asset"])
    for symbol, total in (
        Balance.objects.filter(account__user__isnull=False).values("asset__symbol").annotate(t=Sum("available") + Sum("locked")).values_list("asset__symbol", "t")
    ):
        # A gauge is a float by nature: this is for dashboards; the exact figure is ledger_audit's.
        liabilities.add_metric([symbol], float(total or 0))
    yield liabilities

    last = ledger_audit_last()
    audit_ok = _gauge("kk99_ledger_audit_ok", [])
    audit_at = _gauge("kk99_ledger_audit_last_run_timestamp_seconds", [])
    if last:
        audit_ok.add_metric([], 1 if last["ok"] else 0)
        audit_at.add_metric([], last["at"])
    yield audit_ok
    yield audit_at

    queue = _gauge("kk99_celery_queue_depth", ["queue"])
    for name, depth_n in _celery_queue_depths().items():
        queue.add_metric([name], depth_n)
    yield queue


def _celery_queue_depths() -> dict[str, int]:
    from django.conf import settings

    broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if not broker.startswith(("redis://", "rediss://")):
        return {}
    import redis

    client = redis.Redis.from_url(broker, socket_timeout=1)
    try:
        names = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery") or "celery"}
        return {name: int(client.llen(name)) for name in sorted(names)}
    finally:
        client.close()


# --- exposition ----------------------------------------------------------------------------

def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape_registry(*, with_state: bool = True) -> CollectorRegistry:
    """The registry ``/metrics`` renders: every process's instruments (multiprocess mode) or
    this process's, plus the shared state."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessInstruments())
    if with_state:
        registry.register(StateCollector())
    return registry


class _ProcessInstruments(Collector):
    """The default registry's metrics, re-exposed (so our scrape registry can add the state)."""

    def collect(self):
        yield from REGISTRY.collect()


def render(*, with_state: bool = True) -> tuple[bytes, str]:
    return generate_latest(scrape_registry(with_state=with_state)), CONTENT_TYPE_LATEST


def metrics_view(request):
    """``GET /metrics`` — Prometheus text format. Restrict it at the ingress/NetworkPolicy
    (deploy/k8s) or with ``KK99_METRICS_TOKEN`` (a bearer token)."""
    from django.http import HttpResponse, HttpResponseForbidden
    import hmac

    token = os.environ.get("KK99_METRICS_TOKEN", "")
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return HttpResponseForbidden("metrics token required\n", content_type="text/plain")
    body, content_type = render()
    return HttpResponse(body, content_type=content_type)


_exporter_started = False


def start_exporter(*, with_state: bool = False) -> int | None:
    """Serve ``/metrics`` of this process on ``KK99_METRICS_PORT`` (engines, Celery workers).
    Returns the port, or None when the variable is unset."""
    global _exporter_started
    port = os.environ.get("KK99_METRICS_PORT")
    if not port or _exporter_started:
        return None
    start_http_server(int(port), addr=os.environ.get("KK99_METRICS_ADDR", "0.0.0.0"), registry=scrape_registry(with_state=with_state))
    _exporter_started = True
    return int(port)


def mark_process_dead(pid: int) -> None:
    """gunicorn ``child_exit`` hook: drop a dead worker's live gauges (multiprocess mode)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


# --- instrumentation helpers ---------------------------------------------------------------

class MetricsMiddleware:
    """Counts and times every request by its URL pattern name (bounded label values: an
    unmatched URL is ``unmatched``, never the raw path)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/metrics":
            return self.get_response(request)
        start = time.perf_counter()
        HTTP_IN_FLIGHT.inc()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            HTTP_IN_FLIGHT.dec()
            match = getattr(request, "resolver_match", None)
            route = (match.view_name or match.route) if match is not None else "unmatched"
            method = request.method if request.method in _METHODS else "other"
            HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
            HTTP_LATENCY.labels(route=route, method=method).observe(time.perf_counter() - start)


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def engine_batch_done(market: str, *, commands: int, trades: int, quarantined: int, seconds: float) -> None:
    if not commands:
        return
    ENGINE_BATCH_SIZE.labels(market=market).observe(commands)
    ENGINE_BATCH_LATENCY.labels(market=market).observe(seconds)
    ENGINE_COMMANDS.labels(market=market).inc(commands)
    if trades:
        ENGINE_TRADES.labels(market=market).inc(trades)
    if quarantined:
        ENGINE_QUARANTINED.labels(market=market).inc(quarantined)


def connect_celery_signals() -> None:
    """Count and time Celery tasks (called from kk99/celery.py)."""
    from celery import signals

    started: dict[str, float] = {}

    @signals.task_prerun.connect(weak=False)
    def _prerun(task_id=None, **_):
        started[task_id] = time.perf_counter()

    @signals.task_postrun.connect(weak=False)
    def _postrun(task_id=None, task=None, state=None, **_):
        t0 = started.pop(task_id, None)
        name = getattr(task, "name", "unknown")
        if t0 is not None:
            CELERY_LATENCY.labels(task=name).observe(time.perf_counter() - t0)
        CELERY_TASKS.labels(task=name, state=(state or "unknown").lower()).inc()

    @signals.worker_ready.connect(weak=False)
    def _ready(**_):
        # The worker's main process serves every child's values (PROMETHEUS_MULTIPROC_DIR).
        start_exporter()
