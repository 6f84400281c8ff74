"""Terraform (deploy/terraform, NOT applied): every file parses (python-hcl2), the stack has the
managed Kubernetes, PostgreSQL and Redis with encryption and backups, and checkov finds no
failed check in the Terraform, the Kubernetes manifests or the Dockerfile."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "deploy" / "terraform"
CHECKOV = ROOT / "var" / "ops-tools" / "checkov" / "bin" / "checkov"
needs_checkov = pytest.mark.skipif(not CHECKOV.exists(), reason="checkov missing: run deploy/scripts/install-ops-tools.sh (make test-tools)")


def _parsed() -> dict[str, dict]:
    out = {}
    for path in sorted(TF.glob("*.tf")):
        with path.open() as f:
            out[path.name] = hcl2.load(f)
    return out


def _unquote(value):
    """python-hcl2 8 keeps HCL string quotes on keys and string values."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def _resources() -> dict[str, dict]:
    found = {}
    for doc in _parsed().values():
        for block in _unquote(doc.get("resource", [])):
            for rtype, named in block.items():
                for name, body in named.items():
                    found[f"{rtype}.{name}"] = body
    return found


def test_every_terraform_file_parses():
    parsed = _parsed()
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= set(parsed)


def test_the_configuration_says_plainly_it_was_not_applied():
    assert "NOT APPLIED" in (TF / "README.md").read_text()
    for name in ("main.tf", "versions.tf"):
        assert "NOT APPLIED" in (TF / name).read_text().splitlines()[0]


def test_managed_kubernetes_postgres_and_redis_are_encrypted_private_and_backed_up():
    r = _resources()
    assert "aws_eks_cluster.main" in r and "aws_eks_node_group.main" in r
    db = r["aws_db_instance.main"]
    assert db["engine"] == "postgres" and db["storage_encrypted"] is True and db["publicly_accessible"] is False
    assert db["multi_az"] is True and db["backup_retention_period"] >= 7 and db["deletion_protection"] is True
    redis = r["aws_elasticache_replication_group.main"]
    assert redis["at_rest_encryption_enabled"] is True and redis["transit_encryption_enabled"] is True
    assert redis["automatic_failover_enabled"] is True


def _checkov(target: list[str], framework: str) -> dict:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run([str(CHECKOV), *target, "--framework", framework, "--skip-download", "--output", "json", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=600)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"checkov gave no JSON (exit {proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}") from None
    reports = data if isinstance(data, list) else [data]
    return {
        "failed": [f"{c['check_id']} {c['resource']} {c['file_path']}" for rep in reports for c in rep.get("results", {}).get("failed_checks", [])],
        "passed": sum(rep.get("summary", {}).get("passed", 0) for rep in reports),
    }


@needs_checkov
@pytest.mark.parametrize(("target", "framework"), [
    (["-d", "deploy/terraform"], "terraform"),
    (["-d", "deploy/k8s"], "kubernetes"),
    (["-f", "deploy/docker/Dockerfile"], "dockerfile"),
])
def test_checkov_finds_no_failed_check(target, framework, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = _checkov(target, framework)
    assert result["passed"] > 50
    assert not result["failed"], "\n".join(result["failed"])


@needs_checkov
def test_checkov_catches_a_public_unencrypted_database(tmp_path, monkeypatch):
    (tmp_path / "bad.tf").write_text('resource "aws_db_instance" "bad" {\n  engine = "postgres"\n  instance_class = "db.t3.micro"\n'
                                     '  publicly_accessible = true\n  storage_encrypted = false\n}\n')
    result = _checkov(["-d", str(tmp_path)], "terraform")
    assert any("CKV_AWS_16" in f for f in result["failed"])  # storage not encrypted
