"""The Strategies page end to end through Django: create a run (market candles or an
uploaded CSV), the Celery task runs it, progress/result fragments, plots, comparison, and
bad input refused with a 4xx and nothing saved."""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest
from django.urls import reverse

from quant.bars import bars_to_csv, synthetic_bars
from quant.jobs import backtest_run_execute
from quant.models import BacktestRun
from quant.tasks import backtest_run_task
from tests.api.factories import make_market, write_trade

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.fixture
def eager_task(monkeypatch):
    """The task runs in-process when the transaction commits (the worker's code path)."""
    monkeypatch.setattr(backtest_run_task, "delay", lambda run_id: backtest_run_task.apply(args=(run_id,)))


@pytest.fixture
def client_in(client, django_user_model):
    user = django_user_model.objects.create_user(email="quant@example.com", password="pw-not-used-123")
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def market_with_candles():
    market = make_market()
    now = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    bars = synthetic_bars(120, seed=2, start=30000)
    for i, price in enumerate(bars.close):
        write_trade(market, price=f"{price:.2f}", qty="0.5", at=now - dt.timedelta(hours=120 - i, minutes=-5))
    return market


def test_the_page_lists_strategies_and_uses_no_inline_script_or_style(client_in):
    html = client_in.get(reverse("quant:strategies")).content.decode()
    assert "sma_cross" in html and "rsi_reversion" in html and "quant/strategies.js" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # every script is a static file
    assert " style=" not in html and "<style" not in html


def test_the_page_needs_a_login(client):
    response = client.get(reverse("quant:strategies"))
    assert response.status_code == 302


def test_a_run_on_the_exchanges_candles_completes_with_metrics_and_a_plot(client_in, market_with_candles, eager_task,
                                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_in.post(reverse("quant:run_create"), {
            "strategy": "sma_cross", "params": "fast=5, slow=20", "symbol": "BTCUSDT", "interval": "1h", "bars": "100",
            "engine": "vectorised", "fee": "0.001", "stop_loss": "",
        })
    run = BacktestRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("quant:run", args=[run.pk])
    assert (run.status, run.progress, run.params["fast"], run.params["slow"]) == ("DONE", 100, 5, 20)
    assert run.metrics["trades"] >= 1 and len(run.equity) == 100
    page = client_in.get(reverse("quant:run", args=[run.pk])).content.decode()
    assert "Sharpe" in page and reverse("quant:run_plot", args=[run.pk]) in page and "hx-trigger" not in page
    svg = client_in.get(reverse("quant:run_plot", args=[run.pk]))
    assert svg["Content-Type"] == "image/svg+xml" and svg.content.lstrip().startswith(b"<?xml")


def test_an_unfinished_run_polls_for_progress(client_in, market_with_candles):
    run = BacktestRun.objects.create(user=client_in.user, strategy="sma_cross", symbol="BTCUSDT", progress=30,
                                     status=BacktestRun.Status.RUNNING)
    fragment = client_in.get(reverse("quant:run", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in fragment and 'value="30"' in fragment and "<html" not in fragment


def test_a_csv_upload_is_backtested_on_the_users_own_data(client_in, eager_task, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = bars_to_csv(synthetic_bars(400, seed=3)).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_in.post(reverse("quant:run_create"), {
            "strategy": "rsi_reversion", "params": "", "interval": "1h", "bars": "1000", "engine": "replay", "fee": "0.001",
            "csv": SimpleUploadedFile("mine.csv", data, content_type="text/csv"),
        }, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'id="runs"' in response.content.decode()
    run = BacktestRun.objects.get()
    assert (run.status, run.csv_name, run.source, len(run.equity)) == ("DONE", "mine.csv", "mine.csv", 400)


@pytest.mark.parametrize("fields, message", [
    ({"strategy": "nope"}, "unknown strategy"),
    ({"params": "fast=30, slow=10"}, "fast must be shorter"),
    ({"params": "fast"}, "key=value"),
    ({"params": "speed=3"}, "unknown parameter"),
    ({"fee": "abc"}, "fee must be a number"),
    ({"fee": "0.5"}, "fee must be in"),
    ({"bars": "1"}, "bars out of range"),
    ({"stop_loss": "2"}, "stop_loss must be in"),
    ({"symbol": "NOPEUSDT"}, "no market"),
    ({"interval": "7h"}, "unknown interval"),
])
def test_bad_input_is_refused_with_a_4xx_and_saves_nothing(client_in, market_with_candles, fields, message):
    data = {"strategy": "sma_cross", "params": "fast=5, slow=20", "symbol": "BTCUSDT", "interval": "1h", "bars": "100",
            "engine": "vectorised", "fee": "0.001", "stop_loss": "", **fields}
    response = client_in.post(reverse("quant:run_create"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not BacktestRun.objects.exists()


def test_a_broken_csv_is_refused_with_the_line_that_failed(client_in):
    from django.core.files.uploadedfile import SimpleUploadedFile

    bad = b"time,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n2024-01-02,1,x,0.5,1\n"
    response = client_in.post(reverse("quant:run_create"), {"strategy": "sma_cross", "params": "", "fee": "0.001",
                                                            "csv": SimpleUploadedFile("bad.csv", bad)})
    assert response.status_code == 400 and "line 3" in response.content.decode()
    assert not BacktestRun.objects.exists()


def test_runs_are_private_and_comparable(client_in, django_user_model):
    other = django_user_model.objects.create_user(email="other@example.com", password="pw-not-used-123")
    mine = [BacktestRun.objects.create(user=client_in.user, strategy="sma_cross", status="DONE",
                                       metrics={"sharpe": s, "trades": 3}, equity=list(np.linspace(100, 100 + s, 50)))
            for s in (1.0, 2.0)]
    theirs = BacktestRun.objects.create(user=other, strategy="sma_cross", status="DONE", equity=[1, 2])
    assert client_in.get(reverse("quant:run", args=[theirs.pk])).status_code == 404
    assert client_in.get(reverse("quant:run_plot", args=[theirs.pk])).status_code == 404
    page = client_in.get(reverse("quant:compare") + f"?run={mine[0].pk}&run={mine[1].pk}").content.decode()
    assert "1.000" in page and "2.000" in page
    plot = client_in.get(reverse("quant:compare_plot") + f"?run={mine[0].pk}&run={mine[1].pk}")
    assert plot.status_code == 200 and b"<svg" in plot.content
    assert client_in.get(reverse("quant:compare") + f"?run={theirs.pk}").status_code == 404


def test_a_redelivered_task_does_not_run_twice(client_in, market_with_candles):
    run = BacktestRun.objects.create(user=client_in.user, strategy="sma_cross", symbol="BTCUSDT", interval="1h", bars=50,
                                     params={"fast": 5, "slow": 20})
    assert backtest_run_execute(run_id=run.pk).status == "DONE"
    assert backtest_run_execute(run_id=run.pk) is None  # already claimed: nothing happens


def test_a_replay_run_on_the_exchange_replays_its_recorded_trades(client_in, market_with_candles, eager_task,
                                                                  django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client_in.post(reverse("quant:run_create"), {
            "strategy": "ema_cross", "params": "fast=3, slow=8", "symbol": "BTCUSDT", "interval": "1h", "bars": "100",
            "engine": "replay", "fee": "0.001",
        })
    run = BacktestRun.objects.get()
    assert (run.status, run.engine, len(run.equity)) == ("DONE", "replay", 100), run.error
    assert run.metrics["trades"] >= 1


def test_a_run_whose_worker_died_is_taken_over_by_the_redelivered_task(client_in, market_with_candles):
    from django.utils import timezone

    from quant.jobs import STALE_AFTER

    dead = BacktestRun.objects.create(user=client_in.user, strategy="sma_cross", symbol="BTCUSDT", interval="1h", bars=50,
                                      params={"fast": 5, "slow": 20}, status=BacktestRun.Status.RUNNING, progress=30,
                                      started_at=timezone.now() - STALE_AFTER - dt.timedelta(seconds=1))
    busy = BacktestRun.objects.create(user=client_in.user, strategy="sma_cross", symbol="BTCUSDT", interval="1h", bars=50,
                                      params={"fast": 5, "slow": 20}, status=BacktestRun.Status.RUNNING, progress=30,
                                      started_at=timezone.now())
    assert backtest_run_execute(run_id=dead.pk).status == "DONE"
    assert backtest_run_execute(run_id=busy.pk) is None  # a live worker's claim is respected


def test_staff_see_runs_read_only_in_the_admin(client, django_user_model):
    from django.contrib import admin

    from quant.models import BacktestRun as Model

    model_admin = admin.site._registry[Model]
    assert not model_admin.has_add_permission(None) and not model_admin.has_change_permission(None)
    assert "csv_data" in model_admin.exclude
