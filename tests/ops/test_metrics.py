"""/metrics: the KK99 registry, the request/engine/WebSocket instruments, the state read at
scrape time, and multiprocess mode (workers' counters summed, never reset per worker)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kk99 import metrics
from tests.fixtures import place
from trading.engine.runner import EngineRunner

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def _scrape(client, **headers) -> dict[str, list]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(response.content.decode())}


def _value(samples, name: str, **labels) -> float:
    hits = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert hits, f"no sample {name} {labels}"
    return sum(hits)


def test_at_least_15_kk99_metrics_are_documented_with_help():
    assert len(METRICS_KK99 := [n for n in metrics.METRICS if n.startswith("kk99_")]) >= 15
    assert len(METRICS_KK99) == len(metrics.METRICS)
    for name, (kind, help_) in metrics.METRICS.items():
        assert kind in {"counter", "gauge", "histogram"} and len(help_) > 20, name


def test_operations_manual_documents_every_metric():
    text = (ROOT / "docs" / "operations.md").read_text()
    missing = [name for name in metrics.METRICS if f"`{name}`" not in text]
    assert not missing, f"docs/operations.md lacks {missing}"


def test_metrics_endpoint_counts_requests_by_route_and_status(client):
    before = _scrape(client)
    base = _value(before.get("kk99_http_requests", []), "kk99_http_requests_total", route="healthz", status="200") if any(
        s.labels.get("route") == "healthz" for s in before.get("kk99_http_requests", [])
    ) else 0.0
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    client.get("/no/such/page/at-all")
    after = _scrape(client)
    assert _value(after["kk99_http_requests"], "kk99_http_requests_total", route="healthz", method="GET", status="200") == base + 3
    # An unknown URL is one bounded label value, never the raw path.
    assert _value(after["kk99_http_requests"], "kk99_http_requests_total", route="unmatched", status="404") >= 1
    assert not any("no/such" in str(s.labels) for s in after["kk99_http_requests"])
    assert _value(after["kk99_http_request_duration_seconds"], "kk99_http_request_duration_seconds_count", route="healthz") >= 3


def test_state_metrics_show_claim_lag_and_pending_orders_until_the_engine_runs(client, market, alice, settings):
    settings.KK99 = {**settings.KK99, "ENGINE_IDLE_WAIT_SECONDS": 0.05, "ENGINE_SQLITE_POLL_SECONDS": 0.01}
    place(alice, market, "BUY", quantity="1", price="100")
    place(alice, market, "BUY", quantity="1", price="99")
    scraped = _scrape(client)
    assert _value(scraped["kk99_engine_pending_commands"], "kk99_engine_pending_commands", market="BTCUSDT") == 2
    assert _value(scraped["kk99_engine_claim_lag_seconds"], "kk99_engine_claim_lag_seconds", market="BTCUSDT") >= 0
    assert _value(scraped["kk99_state_scrape_errors"], "kk99_state_scrape_errors") == 0

    commands_before = metrics.ENGINE_COMMANDS.labels(market="BTCUSDT")._value.get()
    assert EngineRunner(["BTCUSDT"], owner="metrics-test").run(max_seconds=0.5) == 0

    scraped = _scrape(client)
    assert _value(scraped["kk99_engine_pending_commands"], "kk99_engine_pending_commands", market="BTCUSDT") == 0
    assert _value(scraped["kk99_engine_claim_lag_seconds"], "kk99_engine_claim_lag_seconds", market="BTCUSDT") == 0
    assert _value(scraped["kk99_book_open_orders"], "kk99_book_open_orders", market="BTCUSDT", side="BUY") == 2
    assert _value(scraped["kk99_engine_epoch"], "kk99_engine_epoch", market="BTCUSDT") == 1
    assert _value(scraped["kk99_engine_commands"], "kk99_engine_commands_total", market="BTCUSDT") == commands_before + 2
    assert _value(scraped["kk99_engine_takeovers"], "kk99_engine_takeovers_total", market="BTCUSDT") >= 1
    assert _value(scraped["kk99_engine_batch_commands"], "kk99_engine_batch_commands_count", market="BTCUSDT") >= 1


def test_ledger_audit_result_reaches_metrics(client, db):
    from django.core.management import call_command

    call_command("ledger_audit", stdout=open(os.devnull, "w"))
    scraped = _scrape(client)
    assert _value(scraped["kk99_ledger_audit_ok"], "kk99_ledger_audit_ok") == 1
    assert _value(scraped["kk99_ledger_audit_last_run_timestamp_seconds"], "kk99_ledger_audit_last_run_timestamp_seconds") > 1.7e9


def test_metrics_token_refuses_a_scrape_without_it(client, monkeypatch):
    monkeypatch.setenv("KK99_METRICS_TOKEN", "s3cret-token")
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_state_scrape_failure_is_reported_not_raised(client, monkeypatch):
    def boom():
        raise RuntimeError("database down")
        yield  # pragma: no cover

    monkeypatch.setattr(metrics, "_state_families", boom)
    scraped = _scrape(client)
    assert _value(scraped["kk99_state_scrape_errors"], "kk99_state_scrape_errors") == 1


_WORKER = """
import sys
from kk99 import metrics
for _ in range(int(sys.argv[1])):
    metrics.HTTP_REQUESTS.labels(route="healthz", method="GET", status="200").inc()
metrics.WS_CONNECTIONS.inc(int(sys.argv[2]))
"""

_SCRAPER = """
from kk99 import metrics
print(metrics.render(with_state=False)[0].decode())
"""


@pytest.mark.django_db(transaction=False)
def test_multiprocess_mode_sums_every_worker_and_keeps_a_dead_workers_counts(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "kk99.settings.test"}
    for count, conns in ((5, 2), (7, 3)):  # two "workers", each exits (dies) after its work
        subprocess.run([sys.executable, "-c", _WORKER, str(count), str(conns)], env=env, check=True, cwd=ROOT)
    out = subprocess.run([sys.executable, "-c", _SCRAPER], env=env, check=True, cwd=ROOT, capture_output=True, text=True).stdout
    total = re.search(r'^kk99_http_requests_total\{method="GET",route="healthz",status="200"\} (\S+)$', out, re.M)
    assert total and float(total.group(1)) == 12.0, out[:2000]
    # livesum: connections of live processes; the two workers did not call mark_process_dead,
    # so their gauges still count — mark_process_dead (gunicorn child_exit) drops them.
    assert re.search(r"^kk99_ws_connections (\S+)$", out, re.M)
