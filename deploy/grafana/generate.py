"""Writes the Grafana dashboards (deploy/grafana/*.json) from the panel lists below.

    python deploy/grafana/generate.py          # rewrite the JSON files
    python deploy/grafana/generate.py --check  # exit 1 if a file differs (tests/ops/test_grafana.py)

Every query must name metrics of kk99/metrics.py; the test checks it. The datasource is the
`DS_PROMETHEUS` input, chosen when the dashboard is imported (or provisioned, see
deploy/grafana/provisioning/)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

# dashboard uid -> (title, [(panel title, unit, [(expr, legend)])])
DASHBOARDS: dict[str, tuple[str, list[tuple[str, str, list[tuple[str, str]]]]]] = {
    "kk99-overview": ("KK99 — exchange overview", [
        ("Orders per second (engine)", "ops", [("sum by (market) (rate(kk99_engine_commands_total[1m]))", "{{market}}")]),
        ("Trades per second", "ops", [("sum by (market) (rate(kk99_engine_trades_total[1m]))", "{{market}}")]),
        ("HTTP requests per second by status", "reqps", [("sum by (status) (rate(kk99_http_requests_total[1m]))", "{{status}}")]),
        ("Claim lag (oldest PENDING_NEW)", "s", [("max by (market) (kk99_engine_claim_lag_seconds)", "{{market}}")]),
        ("Markets trading", "none", [("sum by (status) (kk99_market_trading)", "{{status}}")]),
        ("WebSocket connections", "none", [("sum(kk99_ws_connections)", "connections")]),
        ("Ledger audit ok", "bool", [("min(kk99_ledger_audit_ok)", "ok")]),
        ("Withdrawals pending", "none", [("sum by (status) (kk99_withdrawals_pending)", "{{status}}")]),
    ]),
    "kk99-engine": ("KK99 — matching engine", [
        ("Owner up per market", "bool", [("max by (market) (kk99_engine_owner_up)", "{{market}}")]),
        ("Epoch per market", "none", [("max by (market) (kk99_engine_epoch)", "{{market}}")]),
        ("Owned markets per process", "none", [("kk99_engine_owned_markets", "{{instance}} {{market}}")]),
        ("Batch size p50 / p99", "none", [
            ("histogram_quantile(0.5, sum by (le, market) (rate(kk99_engine_batch_commands_bucket[5m])))", "p50 {{market}}"),
            ("histogram_quantile(0.99, sum by (le, market) (rate(kk99_engine_batch_commands_bucket[5m])))", "p99 {{market}}"),
        ]),
        ("Batch latency p99", "s", [("histogram_quantile(0.99, sum by (le, market) (rate(kk99_engine_batch_duration_seconds_bucket[5m])))", "{{market}}")]),
        ("Pending commands", "none", [("max by (market) (kk99_engine_pending_commands)", "{{market}}")]),
        ("Seconds since last batch", "s", [("max by (market) (kk99_engine_last_batch_age_seconds)", "{{market}}")]),
        ("Book depth (resting orders)", "none", [("max by (market, side) (kk99_book_open_orders)", "{{market}} {{side}}")]),
        ("Takeovers, fenced exits, restarts", "none", [
            ("sum by (market) (increase(kk99_engine_takeovers_total[10m]))", "takeover {{market}}"),
            ("sum(increase(kk99_engine_fenced_total[10m]))", "fenced"),
            ("sum by (reason) (increase(kk99_engine_restarts_total[10m]))", "restart {{reason}}"),
        ]),
        ("Quarantined commands", "none", [("sum by (market) (increase(kk99_engine_quarantined_total[10m]))", "{{market}}")]),
    ]),
    "kk99-api": ("KK99 — API and WebSockets", [
        ("Requests per second by route", "reqps", [("sum by (route) (rate(kk99_http_requests_total[1m]))", "{{route}}")]),
        ("5xx ratio", "percentunit", [("sum(rate(kk99_http_requests_total{status=~\"5..\"}[5m])) / clamp_min(sum(rate(kk99_http_requests_total[5m])), 1e-9)", "5xx")]),
        ("Latency p50 / p99 by route", "s", [
            ("histogram_quantile(0.5, sum by (le, route) (rate(kk99_http_request_duration_seconds_bucket[5m])))", "p50 {{route}}"),
            ("histogram_quantile(0.99, sum by (le, route) (rate(kk99_http_request_duration_seconds_bucket[5m])))", "p99 {{route}}"),
        ]),
        ("In flight", "none", [("sum(kk99_http_requests_in_flight)", "in flight")]),
        ("WebSocket connections", "none", [("sum(kk99_ws_connections)", "connections")]),
        ("WebSocket messages per second", "ops", [("sum(rate(kk99_ws_messages_total[1m]))", "messages")]),
        ("WebSocket drops", "none", [("sum by (reason) (increase(kk99_ws_drops_total[5m]))", "{{reason}}")]),
        ("Celery tasks per second", "ops", [("sum by (task, state) (rate(kk99_celery_tasks_total[5m]))", "{{task}} {{state}}")]),
        ("Celery task p99", "s", [("histogram_quantile(0.99, sum by (le, task) (rate(kk99_celery_task_duration_seconds_bucket[5m])))", "{{task}}")]),
        ("Celery queue depth", "none", [("max by (queue) (kk99_celery_queue_depth)", "{{queue}}")]),
    ]),
    "kk99-chains": ("KK99 — chains", [
        ("Scanner lag (blocks)", "none", [("max by (chain) (kk99_chain_scanner_lag_blocks)", "{{chain}}")]),
        ("Seconds since last scan", "s", [("max by (chain) (kk99_chain_scanner_age_seconds)", "{{chain}}")]),
        ("Deposits pending", "none", [("max by (chain) (kk99_deposits_pending)", "{{chain}}")]),
        ("Withdrawals pending by status", "none", [("max by (status) (kk99_withdrawals_pending)", "{{status}}")]),
        ("Oldest approved withdrawal", "s", [("max(kk99_withdrawal_oldest_pending_seconds)", "age")]),
        ("Custody vs liabilities", "none", [
            ("-max by (asset) (kk99_system_account_balance{kind=\"deposits_clearing\"})", "received {{asset}}"),
            ("max by (asset) (kk99_user_liabilities)", "owed to users {{asset}}"),
        ]),
    ]),
    "kk99-ledger": ("KK99 — ledger", [
        ("Last audit ok", "bool", [("min(kk99_ledger_audit_ok)", "ok")]),
        ("Seconds since last audit", "s", [("time() - max(kk99_ledger_audit_last_run_timestamp_seconds)", "age")]),
        ("Audit runs", "none", [("sum by (result) (increase(kk99_ledger_audit_runs_total[1h]))", "{{result}}")]),
        ("User liabilities per asset", "none", [("max by (asset) (kk99_user_liabilities)", "{{asset}}")]),
        ("System accounts per asset", "none", [("max by (kind, asset) (kk99_system_account_balance)", "{{kind}} {{asset}}")]),
        ("State scrape errors", "none", [("max(kk99_state_scrape_errors)", "errors")]),
    ]),
}


def dashboard(uid: str, title: str, panels: list) -> dict:
    out = []
    for i, (ptitle, unit, targets) in enumerate(panels):
        out.append({
            "id": i + 1,
            "type": "timeseries",
            "title": ptitle,
            "datasource": DS,
            "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + j), "datasource": DS, "expr": expr, "legendFormat": legend} for j, (expr, legend) in enumerate(targets)],
        })
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus"}],
        "uid": uid,
        "title": title,
        "tags": ["kk99"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": out,
    }


def render_all() -> dict[str, str]:
    return {f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2) + "\n" for uid, (title, panels) in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    files = render_all()
    if "--check" in argv:
        stale = [name for name, text in files.items() if not (HERE / name).is_file() or (HERE / name).read_text() != text]
        if stale:
            print(f"stale dashboards (run python deploy/grafana/generate.py): {stale}")
            return 1
        return 0
    for name, text in files.items():
        (HERE / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
