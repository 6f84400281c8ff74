"""The production server on PostgreSQL keeps its database connections bounded and reused.

Starts what an operator runs — ``uvicorn kk99.asgi:application --workers 2`` with
``kk99.settings.production`` (a test-friendly environment: local secrets allowed, no TLS
redirect) and ``manage.py run_engine`` so FULL orders fill — on pytest-django's PostgreSQL
test database, then drives 2,000 sequential signed ``/api/v3`` requests (order FULL that
fills, order FULL that rests, cancel, account) and 16 concurrent clients for 20 s. A poller
samples ``pg_stat_activity`` throughout: the server's sessions (``application_name``
``kk99-web``, set through ``PGAPPNAME``) never exceed workers × ``DB_POOL_MAX_SIZE``, and they
are reused rather than reopened. Before the pool (``CONN_MAX_AGE=60`` under ASGI) one client
like this left dozens of idle connections and then exhausted ``max_connections``."""
from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.api.factories import make_market, make_trader, signed_query
from tests.processes import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
POOL_MAX = 6
BOUND = WORKERS * POOL_MAX
SEQUENTIAL_REQUESTS = 2000
CONCURRENT_CLIENTS = 16
CONCURRENT_SECONDS = 20
FERNET_KEY = "q2Xw8VXr6d3m6mJ2qvV6cOaZ4nG7b3a2gG0iGk3sWbQ="
APP_NAME = "kk99-web"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _production_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "KK99_", "DB_", "VAULT_", "CELERY_")) and k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "EMAIL_BACKEND"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "kk99.settings.production",
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "DB_POOL_MAX_SIZE": str(POOL_MAX),
        "DB_POOL_MIN_SIZE": "1",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "KK99_API_KEY_ENCRYPTION_KEY": FERNET_KEY,
        "KK99_ALLOW_LOCAL_SECRETS": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "SECURE_SSL_REDIRECT": "0",
        "KK99_BINANCE_WEIGHT_PER_MINUTE": str(10**9),
        # This test is about connections, not the retail order-rate limit (risk/services.py).
        "KK99_RISK_ORDERS_PER_10S": str(10**9),
        "KK99_RISK_MAX_OPEN_ORDERS_PER_MARKET": str(10**9),
        "KK99_RISK_MAX_OPEN_ORDERS": str(10**9),
        "KK99_BINANCE_ORDER_RESULT_WAIT_SECONDS": "10",  # FULL waits for the fill even on a loaded machine
        "LOG_LEVEL": "WARNING",
    })
    return env


class ConnectionPoller(threading.Thread):
    """Samples the database's sessions every 50 ms from the ``postgres`` database."""

    def __init__(self, dbname: str) -> None:
        super().__init__(daemon=True)
        self.dbname, self.stop, self.max_web, self.max_total, self.samples = dbname, threading.Event(), 0, 0, 0
        self.web_pids: set[int] = set()

    def run(self) -> None:
        with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute("SELECT pid, application_name FROM pg_stat_activity WHERE datname = %s", [self.dbname]).fetchall()
                web = [pid for pid, app in rows if app == APP_NAME]
                self.web_pids.update(web)
                self.max_web, self.max_total = max(self.max_web, len(web)), max(self.max_total, len(rows))
                self.samples += 1
                self.stop.wait(0.05)


class Client:
    """One keep-alive HTTP/1.1 connection signing like a Binance client."""

    def __init__(self, port: int, key: str, secret: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.key, self.secret = key, secret
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []

    def call(self, method: str, path: str, params: dict) -> dict:
        query = signed_query(self.secret, params, recv_window=60000)  # a loaded CI machine must not turn into -1021s
        headers = {"X-MBX-APIKEY": self.key}
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            self.conn.request(method, f"/api/v3/{path}", body=query, headers=headers)
        else:
            self.conn.request(method, f"/api/v3/{path}?{query}", headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        if response.status != 200:
            self.errors.append(f"{method} {path} -> {response.status} {body[:200]!r}")
            return {}
        return json.loads(body)

    def cycle(self) -> tuple[int, str]:
        """Four requests: a FULL buy that crosses the resting sell, a FULL buy that rests, its
        cancel, the account. Returns (requests sent, status of the crossing order)."""
        taker = self.call("POST", "order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.0200", "price": "100.00", "newOrderRespType": "FULL"})
        resting = self.call("POST", "order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.0200", "price": "90.00", "newOrderRespType": "ACK"})
        if resting.get("orderId"):
            self.call("DELETE", "order", {"symbol": "BTCUSDT", "orderId": resting["orderId"]})
        self.call("GET", "account", {"omitZeroBalances": "true"})
        return 4, taker.get("status", "?")


def _wait_ready(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"uvicorn exited {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v3/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"uvicorn did not answer:\n{log.read_text()[-3000:]}")


@pytest.fixture
def production_stack(tmp_path, settings):
    settings.KK99 = {**settings.KK99, "API_KEY_ENCRYPTION_KEY": FERNET_KEY}  # the server decrypts the keys made here
    env = _production_env()
    port = _free_port()
    procs: list[subprocess.Popen] = []
    server_log, engine_log = tmp_path / "uvicorn.log", tmp_path / "engine.log"

    def start() -> int:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "kk99.asgi:application", "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port),
             "--loop", "uvloop", "--http", "httptools", "--no-access-log"],
            cwd=ROOT, env={**env, "PGAPPNAME": APP_NAME}, stdout=server_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        ))
        procs.append(subprocess.Popen(
            [sys.executable, "manage.py", "run_engine", "--markets", "BTCUSDT"],
            cwd=ROOT, env={**env, "PGAPPNAME": "kk99-engine"}, stdout=engine_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        ))
        _wait_ready(port, procs[0], server_log)
        return port

    yield start, server_log
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    connection.close()


def test_uvicorn_on_postgresql_keeps_connections_bounded_under_sequential_and_concurrent_load(django_user_model, production_stack):
    # Arrange: a market, a seller with a deep resting order, one buyer per client.
    start, server_log = production_stack
    make_market()
    seller = make_trader(django_user_model, funds={"BTC": "1000", "USDT": "1000"})
    django_user_model.objects.filter(pk=seller[0].pk).update(kyc_tier=3)  # a 50,000 USDT resting order
    buyers = [make_trader(django_user_model, funds={"USDT": "100000"}) for _ in range(CONCURRENT_CLIENTS)]
    port = start()
    poller = ConnectionPoller(connection.settings_dict["NAME"])
    poller.start()
    maker = Client(port, seller[1], seller[2])
    ask = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "500", "price": "100.00", "newOrderRespType": "RESULT"}
    assert maker.call("POST", "order", ask).get("status") == "NEW", maker.errors

    # Act 1: >= 2,000 sequential signed requests over one keep-alive connection.
    t0 = time.monotonic()
    sequential = Client(port, buyers[0][1], buyers[0][2])
    sent, fills = 0, {}
    while sent < SEQUENTIAL_REQUESTS:
        n, status = sequential.cycle()
        sent, fills[status] = sent + n, fills.get(status, 0) + 1
    sequential_seconds = time.monotonic() - t0
    max_web_sequential = poller.max_web

    # Act 2: 16 concurrent clients for 20 s.
    clients = [Client(port, key, secret) for _, key, secret in buyers]
    stop_at = time.monotonic() + CONCURRENT_SECONDS
    crashes: list[BaseException] = []

    def run(client: Client) -> None:
        try:
            while time.monotonic() < stop_at:
                client.cycle()
        except BaseException as exc:  # reported below
            crashes.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CONCURRENT_SECONDS + 60)
    poller.stop.set()
    poller.join(5)

    # Assert: no 5xx, everything answered, connections bounded and reused.
    statuses: dict[int, int] = {}
    errors: list[str] = []
    for c in [sequential, *clients]:
        for code, count in c.statuses.items():
            statuses[code] = statuses.get(code, 0) + count
        errors += c.errors
    total = sum(statuses.values())
    concurrent_requests = total - sum(sequential.statuses.values())
    print(f"\nsequential: {sum(sequential.statuses.values())} requests in {sequential_seconds:.1f} s, crossing orders {fills}; "
          f"concurrent: {concurrent_requests} requests from {CONCURRENT_CLIENTS} clients in {CONCURRENT_SECONDS} s; statuses {statuses}; "
          f"server sessions max {poller.max_web} (bound {BOUND}), after the sequential run {max_web_sequential}, distinct backends {len(poller.web_pids)}; "
          f"all sessions of the database max {poller.max_total}; {poller.samples} samples")
    assert not crashes, crashes[:3]
    assert not any(code >= 500 for code in statuses), (statuses, errors[:10], server_log.read_text()[-3000:])
    assert statuses.get(200, 0) >= 0.99 * total, (statuses, errors[:10])
    assert sum(sequential.statuses.values()) >= SEQUENTIAL_REQUESTS
    assert fills.get("FILLED", 0) >= 0.9 * sum(fills.values()), fills  # the engine ran: FULL orders filled
    assert concurrent_requests >= CONCURRENT_CLIENTS * 4
    assert poller.samples > 50 and poller.max_web > 0
    assert poller.max_web <= BOUND, (poller.max_web, BOUND)
    # Reused, not reopened per request: every backend the server ever had fits in the bound.
    assert len(poller.web_pids) <= BOUND, len(poller.web_pids)
