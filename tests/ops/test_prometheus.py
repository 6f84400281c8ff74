"""Alert rules: promtool checks them, promtool's unit tests fire and silence each alert, and
every metric a rule names is a KK99 metric that exists (kk99/metrics.py)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kk99.metrics import METRICS

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: run deploy/scripts/install-ops-tools.sh (make test-tools)")

REQUIRED_ALERTS = {
    "KK99EngineDown", "KK99EngineFenced", "KK99ClaimLagHigh", "KK99LedgerAuditFailing", "KK99LedgerAuditStale",
    "KK99ChainScannerStalled", "KK99WithdrawalQueueStuck", "KK99HighErrorRate", "KK99WebSocketDrops",
}


def _rules() -> list[dict]:
    doc = yaml.safe_load((PROM / "alerts.rules.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def metric_names_in(expr: str) -> set[str]:
    """KK99 metric names a PromQL expression uses (series suffixes _bucket/_count/_sum folded)."""
    names = set(re.findall(r"\b(kk99_[a-z0-9_]+)", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) if n not in METRICS else n for n in names}


def known_metric(name: str) -> bool:
    return name in METRICS or name + "_total" in METRICS


@needs_promtool
def test_promtool_check_rules_accepts_the_rules():
    proc = subprocess.run([PROMTOOL, "check", "rules", "alerts.rules.yml"], cwd=PROM, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass():
    proc = subprocess.run([PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=PROM, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
def test_promtool_unit_tests_fail_when_an_alert_threshold_is_wrong(tmp_path):
    """The promtool tests can fail: loosen the claim-lag threshold and they catch it."""
    (tmp_path / "alerts.rules.yml").write_text((PROM / "alerts.rules.yml").read_text().replace("kk99_engine_claim_lag_seconds) > 5", "kk99_engine_claim_lag_seconds) > 50"))
    (tmp_path / "alerts.test.yml").write_text((PROM / "alerts.test.yml").read_text())
    proc = subprocess.run([PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "KK99ClaimLagHigh" in proc.stdout + proc.stderr


def test_every_required_alert_exists_with_severity_and_runbook():
    rules = {r["alert"]: r for r in _rules()}
    assert REQUIRED_ALERTS <= set(rules)
    ops = (PROM.parents[1] / "docs" / "operations.md").read_text().lower()
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert f"### {anchor.replace('-', ' ')}" in ops, f"{name}: runbook section {anchor} missing in docs/operations.md"


def test_every_metric_an_alert_uses_exists():
    for rule in _rules():
        names = metric_names_in(rule["expr"])
        assert names, rule["alert"]
        unknown = [n for n in names if not known_metric(n)]
        assert not unknown, f"{rule['alert']} uses unknown metrics {unknown}"


def test_metric_name_check_catches_a_typo():
    assert not known_metric("kk99_engine_claim_lag_secs")
    assert metric_names_in('rate(kk99_http_request_duration_seconds_bucket[5m])') == {"kk99_http_request_duration_seconds"}


@needs_promtool
def test_promtool_check_config_accepts_the_compose_prometheus_config():
    proc = subprocess.run([PROMTOOL, "check", "config", "prometheus.yml"], cwd=PROM, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_beat_schedules_the_ledger_audit_that_the_stale_alert_expects():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["ops-ledger-audit"]
    assert entry["task"] == "ops.ledger_audit" and entry["schedule"] < 7200


@pytest.mark.django_db
def test_the_periodic_ledger_audit_task_records_its_result():
    from kk99.metrics import ledger_audit_last
    from kk99.tasks import ledger_audit_periodic

    assert ledger_audit_periodic() is True
    assert ledger_audit_last()["ok"] is True


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_periodic_ledger_audit_reads_one_snapshot(monkeypatch):
    """Under load a plain audit compared balances and entries read at different moments and
    reported mismatches that did not exist (the scale-out demo): it must run in one
    REPEATABLE READ snapshot."""
    from django.db import connection

    import wallets.audit
    from kk99.tasks import ledger_audit_periodic

    seen = {}
    real = wallets.audit.ledger_audit_run

    def spy():
        with connection.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            seen["isolation"] = cursor.fetchone()[0]
            cursor.execute("SHOW transaction_read_only")
            seen["read_only"] = cursor.fetchone()[0]
        return real()

    monkeypatch.setattr(wallets.audit, "ledger_audit_run", spy)
    assert ledger_audit_periodic() is True
    assert seen == {"isolation": "repeatable read", "read_only": "on"}
