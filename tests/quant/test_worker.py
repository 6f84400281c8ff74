"""The Strategies page's job through what production runs: the run is queued on Redis when
the transaction commits and a real `celery worker` process (its own Django, PostgreSQL)
claims it, runs it and stores the result."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from kk99.celery import app
from quant.bars import bars_to_csv, synthetic_bars
from quant.models import BacktestRun
from quant.services import backtest_run_create
from tests.processes import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(tmp_path):
    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("needs PostgreSQL and Redis")
    queue = f"quant-test-{os.getpid()}"  # a private queue: no other worker can take the job
    saved = app.conf.task_always_eager, app.conf.task_default_queue
    app.conf.task_always_eager, app.conf.task_default_queue = False, queue
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "kk99.settings.test"}
    log = open(tmp_path / "worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "kk99", "worker", "--pool", "solo", "-Q", queue,
                             "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    app.conf.task_always_eager, app.conf.task_default_queue = saved
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    connection.close()


def test_a_real_worker_runs_a_queued_backtest(worker, django_user_model, tmp_path):
    user = django_user_model.objects.create_user(email="w@example.com", password="pw-not-used-123")
    csv = bars_to_csv(synthetic_bars(800, seed=8)).encode()
    run = backtest_run_create(user=user, strategy="bollinger_reversion", params={"period": "20"}, csv_name="w.csv",
                              csv_data=csv, bars=800)
    deadline = time.monotonic() + 180  # a deadline for a loaded machine, not a speed assertion
    while time.monotonic() < deadline and worker.poll() is None:
        run.refresh_from_db()
        if run.finished:
            break
        time.sleep(0.2)
    log = (tmp_path / "worker.log").read_text()
    assert run.status == BacktestRun.Status.DONE, f"{run.status} {run.error}\n{log[-3000:]}"
    assert len(run.equity) == 800 and run.progress == 100 and "quant.backtest_run" in log
