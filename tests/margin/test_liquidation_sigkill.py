"""SIGKILL of a liquidation worker and of the engine in the middle of a liquidation loses or
duplicates nothing: real processes (``manage.py liquidation_cycle --loop``, a real ``celery
worker`` fed by a beat-like sender, and ``manage.py run_engine``) on PostgreSQL, killed at the fault points of margin.liquidation
(``KK99_LIQ_CRASH_AFTER_STEPS`` / ``KK99_LIQ_CRASH_POINT``) and of the engine
(``KK99_ENGINE_CRASH_AFTER_BATCHES``), then restarted; the end state must be exactly the one
an uninterrupted liquidation reaches (test_liquidation.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from decimal import Decimal as D

import pytest
from django.db import connection
from django.db.models import Sum

from margin.audit import margin_audit_problems
from kk99.celery import app
from margin.insurance import insurance_fund_balance
from margin.liquidation_tasks import liquidation_cycle_task
from margin.models import Liquidation, LiquidationStatus, Loan
from marketdata.mark import mark_set
from tests.margin.test_liquidation import _long
from tests.processes import database_url
from tests.trading.test_engine_process import ROOT, Engines, _log
from trading.engine.core import MarketEngine
from trading.models import Order, Trade
from trading.services import order_place
from wallets.audit import ledger_audit_run
from wallets.models import Balance, JournalEvent

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Workers:
    def __init__(self, tmp_path):
        self.procs: list[subprocess.Popen] = []
        self.tmp = tmp_path

    def start(self, label: str, **env_extra) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "kk99.settings.test", "LOG_LEVEL": "INFO"}
        env.pop("REDIS_URL", None)
        env.update({k: str(v) for k, v in env_extra.items()})
        log = open(self.tmp / f"liq-{label}-{len(self.procs)}.log", "w")
        proc = subprocess.Popen([sys.executable, "manage.py", "liquidation_cycle", "--loop", "--max-seconds", "300", "--interval", "0.05"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        proc.log_path = log.name
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)


@pytest.fixture
def workers(tmp_path):
    w = Workers(tmp_path)
    yield w
    w.stop_all()


@pytest.fixture
def engines(tmp_path):
    e = Engines(tmp_path)
    yield e
    e.stop_all()
    connection.close()


class CeleryWorkers:
    """Real ``celery worker`` processes on a private queue, and a thread that queues the
    liquidation task every 0.2 s as Celery beat would (the task is idempotent step by step,
    so a task that dies with its worker is simply run again by the next tick)."""

    def __init__(self, tmp_path):
        self.procs: list[subprocess.Popen] = []
        self.tmp = tmp_path
        self.queue = f"liq-test-{os.getpid()}"
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._tick, daemon=True)
        self._saved = app.conf.task_always_eager

    def _tick(self):
        while not self._stop.wait(0.2):
            liquidation_cycle_task.apply_async(queue=self.queue)

    def start(self, label: str, **env_extra) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "kk99.settings.test", "LOG_LEVEL": "INFO"}
        env.update({k: str(v) for k, v in env_extra.items()})
        log = open(self.tmp / f"celery-{label}-{len(self.procs)}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "kk99", "worker", "--pool", "solo", "-Q", self.queue,
                                 "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        proc.log_path = log.name
        self.procs.append(proc)
        if not self._beat.is_alive():
            app.conf.task_always_eager = False
            self._beat.start()
        return proc

    def stop_all(self):
        self._stop.set()
        if self._beat.is_alive():
            self._beat.join(timeout=5)
        app.conf.task_always_eager = self._saved
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        with app.connection_for_write() as conn:  # drop what the beat queued and nobody took
            conn.default_channel.queue_purge(self.queue)


@pytest.fixture
def celery_workers(tmp_path):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("a real Celery worker needs the Redis broker")
    w = CeleryWorkers(tmp_path)
    yield w
    w.stop_all()


def _until(predicate, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    logs = "\n".join(_log(p) for p in procs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


@pytest.mark.parametrize(("point", "after", "engine_crash"), [
    ("before_commit", 1, None),  # killed while placing the closing order
    ("after_commit", 1, "before_commit"),  # order placed; the engine dies inside the batch that fills it
    ("before_commit", 2, "after_commit_before_publish"),  # killed while repaying / charging the fee
    ("after_commit", 2, None),  # killed right after the liquidation finished
])
def test_sigkill_mid_liquidation_loses_and_duplicates_nothing(point, after, engine_crash, cross, market, trader, usdt, btc, workers, engines):
    _kill_mid_liquidation_then_finish(workers, engines, point, after, engine_crash, cross, market, trader, usdt)


@pytest.mark.redis
@pytest.mark.parametrize(("point", "after"), [
    ("before_commit", 1),  # the Celery worker dies while placing the closing order
    ("before_commit", 2),  # ... while repaying / charging the fee
])
def test_sigkill_of_a_celery_worker_mid_liquidation_loses_and_duplicates_nothing(point, after, cross, market, trader, usdt, btc, celery_workers, engines):
    _kill_mid_liquidation_then_finish(celery_workers, engines, point, after, None, cross, market, trader, usdt)


def _kill_mid_liquidation_then_finish(workers, engines, point, after, engine_crash, cross, market, trader, usdt):
    setup_engine = MarketEngine(market.symbol)
    setup_engine.start()
    user, margin, mm = _long(cross, market, setup_engine, trader, usdt)
    order_place(user=mm, market=market, side="BUY", type="LIMIT", price=D("73.40"), quantity=D("1000"))
    setup_engine.run_until_idle()
    fund_before = insurance_fund_balance(usdt)
    mark_set(market=market, price=D("73.48"))

    # The liquidation runs only in the worker processes under test: the engine's hook would
    # otherwise queue a cycle that the engine process (no broker in this drill: Celery eager)
    # runs itself, finishing the liquidation before the crashing worker reaches its fault point.
    engine_env = {"KK99_LIQUIDATION_ENGINE_HOOK": 0}
    if engine_crash:
        engine_env.update({"KK99_ENGINE_CRASH_AFTER_BATCHES": 1, "KK99_ENGINE_CRASH_POINT": engine_crash})
    engine = engines.start("first", **engine_env)
    crashing = workers.start("crashing", KK99_LIQ_CRASH_AFTER_STEPS=after, KK99_LIQ_CRASH_POINT=point)
    _until(lambda: crashing.poll() is not None, 240, "the worker to be killed at its fault point", [crashing, engine])
    assert crashing.returncode == -9, _log(crashing)
    if engine_crash:
        _until(lambda: engine.poll() is not None, 240, "the engine to be killed at its fault point", [engine])
        assert engine.returncode == -9, _log(engine)
        engines.start("second", KK99_LIQUIDATION_ENGINE_HOOK=0)
    elif engine.poll() is not None:
        engines.start("second", KK99_LIQUIDATION_ENGINE_HOOK=0)
    finisher = workers.start("finisher")
    _until(lambda: Liquidation.objects.filter(status=LiquidationStatus.DONE).exists(), 240, "the liquidation to finish", [finisher, *engines.procs])

    liq = Liquidation.objects.get()
    orders = list(Order.objects.filter(liquidation_order__liquidation=liq))
    assert len(orders) == 1 and liq.orders.count() == 1  # placed once, whatever was killed
    (o,) = orders
    assert o.status == Order.Status.FILLED and o.executed_qty == D("44.91")
    assert Trade.objects.filter(taker_order=o).aggregate(q=Sum("qty"))["q"] == o.executed_qty
    assert JournalEvent.objects.filter(idempotency_key=f"liq:{liq.pk}:fee").count() == 1
    assert liq.fee == D("32.96394") and insurance_fund_balance(usdt) - fund_before == D("32.96394")
    assert Loan.objects.get(account=margin.account, asset=usdt).owed == 0
    free = Balance.objects.get(account=margin.account, asset=usdt).available
    assert free == D("3289.801212") - D("3000.06") - D("32.96394")  # exactly the uninterrupted result
    report = ledger_audit_run()
    assert report.ok, report.problems
    assert margin_audit_problems() == []
